#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an input could not be found, opened or read to its end.
///
/// Errors are read by people, often at night: `description` says what happened, in which input,
/// at which byte, and what to do about it. Damage errors (`corruptGzip`, `truncatedGzip`,
/// `trailingGarbage`, `unreadable` during a read) are raised only after every good byte before
/// the damage has been handed out, so the records before it are processed.
public struct InputError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is; match on it rather than on the message.
    public var code: Code
    /// The input as the user named it ("-" for standard input).
    public var source: String
    /// Offset in the raw file (the compressed bytes for gzip) where reading broke, when known.
    public var compressedOffset: Int64?
    /// Offset in the decoded byte stream where reading broke, when known.
    public var uncompressedOffset: Int64?
    /// What happened, in a sentence, without the source or offsets (those are added by `description`).
    public var message: String
    /// The underlying error, for example a ``SystemCallError`` carrying errno.
    public var cause: (any Error & Sendable)?

    public init(
        code: Code,
        source: String,
        message: String,
        compressedOffset: Int64? = nil,
        uncompressedOffset: Int64? = nil,
        cause: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.source = source
        self.message = message
        self.compressedOffset = compressedOffset
        self.uncompressedOffset = uncompressedOffset
        self.cause = cause
    }

    public var description: String {
        var text = "\(source): \(message)"
        var place: [String] = []
        if let compressedOffset {
            place.append(code.isGzipDamage ? "compressed byte \(compressedOffset)" : "byte \(compressedOffset)")
        }
        if let uncompressedOffset, code.isGzipDamage {
            place.append("after \(uncompressedOffset) decompressed bytes")
        }
        if !place.isEmpty {
            text += " (at \(place.joined(separator: ", ")))"
        }
        if let cause {
            text += " [\(cause)]"
        }
        if let advice = code.advice {
            text += ". \(advice)"
        }
        return text
    }

    /// An extensible set of failure kinds: new codes can be added without breaking `switch`-free callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case notFound
            case permissionDenied
            case isDirectory
            case notARegularFile
            case unreadable
            case corruptGzip
            case truncatedGzip
            case trailingGarbage
            case standardInputRepeated
            case invalidFileName
            case changedSinceCheckpoint
        }

        private var wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// The path does not exist (or a symlink points nowhere).
        public static var notFound: Self { Self(.notFound) }
        /// The file or a folder on its path may not be read by this user.
        public static var permissionDenied: Self { Self(.permissionDenied) }
        /// A folder was opened where a file was expected.
        public static var isDirectory: Self { Self(.isDirectory) }
        /// The path names something that cannot be read as a stream of bytes (a socket, for example).
        public static var notARegularFile: Self { Self(.notARegularFile) }
        /// The operating system failed to open or read the input (I/O error, too many open files, ...).
        public static var unreadable: Self { Self(.unreadable) }
        /// The gzip data is damaged: a bad header, invalid compressed data or a checksum mismatch.
        public static var corruptGzip: Self { Self(.corruptGzip) }
        /// The input ends in the middle of a gzip member.
        public static var truncatedGzip: Self { Self(.truncatedGzip) }
        /// After the last gzip member come bytes that are neither another member nor zero padding.
        public static var trailingGarbage: Self { Self(.trailingGarbage) }
        /// Standard input ("-") was named more than once; it can be read only once.
        public static var standardInputRepeated: Self { Self(.standardInputRepeated) }
        /// A file name found in a folder is not valid UTF-8, so it cannot be named in reports.
        public static var invalidFileName: Self { Self(.invalidFileName) }
        /// The input no longer matches what the checkpoint recorded of it (shorter, or another stream).
        public static var changedSinceCheckpoint: Self { Self(.changedSinceCheckpoint) }

        public var description: String {
            switch wrapped {
            case .notFound: "notFound"
            case .permissionDenied: "permissionDenied"
            case .isDirectory: "isDirectory"
            case .notARegularFile: "notARegularFile"
            case .unreadable: "unreadable"
            case .corruptGzip: "corruptGzip"
            case .truncatedGzip: "truncatedGzip"
            case .trailingGarbage: "trailingGarbage"
            case .standardInputRepeated: "standardInputRepeated"
            case .invalidFileName: "invalidFileName"
            case .changedSinceCheckpoint: "changedSinceCheckpoint"
            }
        }

        fileprivate var isGzipDamage: Bool {
            switch wrapped {
            case .corruptGzip, .truncatedGzip, .trailingGarbage: true
            default: false
            }
        }

        /// What the user can do about it, as a sentence.
        fileprivate var advice: String? {
            switch wrapped {
            case .notFound:
                "Check the path (it is relative to the current directory) and that the file was not moved."
            case .permissionDenied:
                "Give this user read permission on the file and search permission on its folders."
            case .isDirectory:
                "Pass the folder itself as an argument to read every file below it."
            case .notARegularFile:
                "Pass a regular file, a pipe or \"-\" for standard input."
            case .unreadable:
                "Check the disk or the mount and run again; records read before the failure were processed."
            case .corruptGzip:
                "The archive is damaged: restore or re-copy it from its source (`gzip -t` confirms); the records before the damage were processed."
            case .truncatedGzip:
                "The file is truncated: was it still being written, or did a copy stop early? Re-copy it and run again; the records before the damage were processed."
            case .trailingGarbage:
                "Something was appended after the gzip data (a partial copy, or two files joined wrongly); all gzip data before it was processed. Check the file's source."
            case .standardInputRepeated:
                "Name \"-\" once."
            case .invalidFileName:
                "Rename the file to a UTF-8 name."
            case .changedSinceCheckpoint:
                "Nothing of it was sent again. Give the same input, or run with --restart to start the backfill over"
            }
        }
    }
}

/// A failed system call and its errno, kept as the `cause` of an ``InputError``.
public struct SystemCallError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The call that failed, such as "open" or "read".
    public var systemCall: String
    /// The errno it reported.
    public var errno: Int32

    public init(systemCall: String, errno: Int32) {
        self.systemCall = systemCall
        self.errno = errno
    }

    public var description: String {
        let reason = strerror(errno).map { String(cString: $0) } ?? "errno \(errno)"
        return "\(systemCall): \(reason) (errno \(errno))"
    }
}

extension InputError {
    /// Maps a failed `open`/`stat`/`opendir` to the code a user can act on.
    static func fromOpen(errno: Int32, call: String, source: String) -> InputError {
        let cause = SystemCallError(systemCall: call, errno: errno)
        switch errno {
        case ENOENT, ENOTDIR:
            return InputError(code: .notFound, source: source, message: "no such file or folder", cause: cause)
        case EACCES, EPERM:
            return InputError(code: .permissionDenied, source: source, message: "permission denied", cause: cause)
        case EISDIR:
            return InputError(code: .isDirectory, source: source, message: "is a folder, not a file", cause: cause)
        case ENXIO:
            return InputError(
                code: .notARegularFile, source: source,
                message: "cannot be opened for reading (a socket or a device without a driver)", cause: cause)
        default:
            return InputError(code: .unreadable, source: source, message: "cannot be opened", cause: cause)
        }
    }
}
