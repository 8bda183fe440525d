import Synchronization

/// The display names of the run's inputs, indexed like `RecordPosition.input`. It grows during a
/// `--follow` run (a rotated file's new generation, a new file in a followed folder), and upload
/// tasks read it to name the source of a failed item.
public final class InputRegistry: Sendable {
    private let names: Mutex<[String]>

    public init(_ inputs: [InputFile]) {
        names = Mutex(inputs.map(\.displayPath))
    }

    /// Adds an input; returns its index.
    public func append(_ input: InputFile) -> Int {
        names.withLock { names in
            names.append(input.displayPath)
            return names.count - 1
        }
    }

    public func name(of index: Int) -> String {
        names.withLock { index < $0.count ? $0[index] : "-" }
    }
}
