#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which file a followed path named when it was opened: rotation shows as a new inode there.
struct FileState {
    let path: String
    let device: UInt64
    let inode: UInt64

    init(path: String) {
        self.path = path
        var info = stat()
        if stat(path, &info) == 0 {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
        } else {
            device = 0
            inode = 0
        }
    }
}

/// `--follow` (README, "Resuming"), like `tail -F`: waits at the end of the last input for it to grow,
/// notices rotation (rename and recreate: a new inode at the path) and copy-truncate (the file
/// got shorter than what was read), and finds new files in the followed folders.
final class Follower {
    enum Change: Equatable, CustomStringConvertible {
        /// More bytes to read in the same file.
        case grew
        /// The path now names a new file: the old one is finished, the new one is read from its start.
        case rotated
        /// The file was truncated in place (copy-truncate): it is read again from its start.
        case truncated
        /// A new file appeared in a followed folder: the current one is finished.
        case superseded
        case stopped

        var description: String {
            switch self {
            case .grew: "grew"
            case .rotated: "was rotated"
            case .truncated: "was truncated"
            case .superseded: "is finished: a newer file appeared"
            case .stopped: "stopped"
            }
        }
    }

    let folders: [String]
    let interval: Double
    private var knownPaths: Set<String>
    private var seenContents: Set<String> = []
    private var discovered: [InputFile] = []
    private var lastScan = 0.0

    init(folders: [String], known: [InputFile], interval: Double) {
        self.folders = folders
        self.interval = interval
        knownPaths = Set(known.compactMap(\.path))
    }

    /// False when this content was already read in this run (a rotated file renamed into a followed folder).
    func firstSight(of identity: InputIdentity, input: InputFile) -> Bool {
        seenContents.insert("\(identity.headLength):\(identity.headHash)").inserted
    }

    /// Waits until the followed file changes or a stop is asked for. Polling, because inotify is
    /// Linux-only and a cheap `stat` a few times a second costs nothing next to an upload.
    /// It runs on the reading thread, so it may block between polls.
    func waitForChange(of file: FileState, read: Int64, stop: StopSignal) -> Change {
        while true {
            if stop.isRequested { return .stopped }
            scanIfDue()
            if !discovered.isEmpty { return .superseded }
            var info = stat()
            if stat(file.path, &info) == 0 {
                if UInt64(info.st_ino) != file.inode || UInt64(info.st_dev) != file.device { return .rotated }
                if Int64(info.st_size) < read { return .truncated }
                if Int64(info.st_size) > read { return .grew }
            }
            pause()
        }
    }

    /// With every input read: waits for a new file in a followed folder (false on a stop).
    func waitForNewFiles(stop: StopSignal) -> Bool {
        while !stop.isRequested {
            scanIfDue()
            if !discovered.isEmpty { return true }
            pause()
        }
        return false
    }

    private func pause() {
        usleep(useconds_t(max(0.001, min(interval, 5)) * 1_000_000))
    }

    /// The files found since the last call, registered as inputs.
    func takeDiscovered(registry: InputRegistry) -> [InputFile] {
        defer { discovered.removeAll() }
        for file in discovered { _ = registry.append(file) }
        return discovered
    }

    private func scanIfDue() {
        guard !folders.isEmpty else { return }
        let now = MonotonicClock.now()
        guard now - lastScan >= max(interval, 0.5) else { return }
        lastScan = now
        guard let files = try? InputDiscovery.expand(folders) else { return }
        for file in files {
            guard let path = file.path, !knownPaths.contains(path) else { continue }
            knownPaths.insert(path)
            discovered.append(file)
        }
    }
}
