import ArgumentParser

/// Shell completion scripts, with `run` completed as the default subcommand in bash.
///
/// swift-argument-parser completes a default subcommand's options only after its name
/// (`intercom-backfill run --region <TAB>`); users type `intercom-backfill --region <TAB>`, as
/// cron lines are written. The bash script's fallback branch (no subcommand named yet) is
/// changed to hand the words to `run`'s completion as well. If a later swift-argument-parser
/// writes that branch differently, the script is left as generated (CommandLineTests then fail).
enum CompletionScript {
    static func script(for shell: CompletionShell) -> String {
        let generated = IntercomBackfillCommand.completionScript(for: shell)
        guard shell == .bash else { return generated }
        let fallback = """
                *)
                    # Offer subcommand completions
                    COMPREPLY+=($(compgen -W 'run sandbox status help' -- "${cur}"))
                    ;;
            """
        let defaultSubcommand = """
                *)
                    # No subcommand named: the words are run's (the default subcommand), and at
                    # the first word the subcommands are offered too. run's completion replaces the
                    # root's flags (it has them too), which the root offers even for an option's value.
                    COMPREPLY=()
                    unparsed_words=("${subcommand}" "${unparsed_words[@]}")
                    _intercom-backfill_run
                    if [[ "${COMP_CWORD}" -eq 1 ]]; then
                        COMPREPLY+=($(compgen -W 'run sandbox status help' -- "${cur}"))
                    fi
                    ;;
            """
        return generated.replacingOccurrences(of: fallback, with: defaultSubcommand)
    }

    /// `--generate-completion-script SHELL` or `--generate-completion-script=SHELL` as the only
    /// arguments: the shell asked for.
    static func requestedShell(_ arguments: [String]) -> CompletionShell? {
        let name: String
        if arguments.count == 2, arguments[0] == "--generate-completion-script" {
            name = arguments[1]
        } else if arguments.count == 1, arguments[0].hasPrefix("--generate-completion-script=") {
            name = String(arguments[0].dropFirst("--generate-completion-script=".count))
        } else {
            return nil
        }
        return CompletionShell(rawValue: name)
    }
}
