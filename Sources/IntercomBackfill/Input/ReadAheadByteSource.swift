#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads another source ahead on a thread of its own, so that inflating gzip (the wrapped
/// source's `read`) runs on one core while the caller parses and maps on another.
///
/// The producer thread fills a small ring of reusable buffers (`slotCount` × `slotSize`) and
/// blocks when all are full, so memory is fixed and the read-ahead is bounded. The consumer takes
/// whole buffers: ``withNextChunk(_:)`` lends one without copying; ``read(into:)`` (the
/// ``ByteSource`` contract) copies it out, which costs a `memcpy` per chunk.
///
/// Everything the wrapped source reports arrives in its order: every good byte first, then its
/// error (thrown by the consumer call that would have read past the damage, and again by every
/// later call), or the end of input. ``close()`` (also run on deinit) stops the thread and waits
/// for it, so no thread outlives the source; the wrapped source is released by the thread as soon
/// as it has finished with it. One consumer at a time, like every ``ByteSource``.
public final class ReadAheadByteSource: ByteSource {
    public static let defaultSlotCount = 4
    public static let defaultSlotSize = 256 << 10

    /// Raw bytes consumed upstream to produce the bytes handed out so far (for progress).
    public private(set) var rawBytesRead: Int64 = 0

    private let ring: ReadAheadRing
    private var thread: pthread_t?
    /// The slot being handed out piece by piece through `read(into:)`, and how much of it is gone.
    private var current: (slot: Int, offset: Int, count: Int)?
    private var failure: (any Error)?
    private var ended = false

    /// Starts reading `upstream` ahead at once. The wrapped source must not be used by anyone else
    /// afterwards: it now belongs to the reading thread.
    public init(
        wrapping upstream: any ByteSource, slotCount: Int = ReadAheadByteSource.defaultSlotCount,
        slotSize: Int = ReadAheadByteSource.defaultSlotSize
    ) {
        precondition(slotCount >= 2, "read-ahead needs at least two buffers: one being read, one being filled")
        precondition(slotSize >= 1, "the buffers must hold at least a byte")
        ring = ReadAheadRing(upstream: upstream, slotCount: slotCount, slotSize: slotSize)
        thread = ReadAheadRing.startThread(ring)
    }

    deinit {
        close()
    }

    /// Stops the reading thread and waits for it to end; later reads return end of input (or the
    /// error already met). Waiting can last as long as one `read` of the wrapped source, for
    /// example on a pipe that has not yet been written to.
    public func close() {
        guard let thread else { return }
        ring.cancel()
        pthread_join(thread, nil)
        self.thread = nil
        if failure == nil { ended = true }
        current = nil
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let out = buffer.baseAddress, buffer.count > 0 else { return 0 }
        if current == nil {
            guard let taken = try take() else { return 0 }
            current = (taken.slot, 0, taken.count)
        }
        let (slot, offset, count) = current!
        let n = min(count - offset, buffer.count)
        out.copyMemory(from: ring.slotBase(slot) + offset, byteCount: n)
        if offset + n == count {
            current = nil
            ring.release()
        } else {
            current = (slot, offset + n, count)
        }
        return n
    }

    /// Lends the next ready chunk of bytes to `body` without copying, and returns what `body`
    /// returned; nil at the end of input. The bytes are valid only inside `body`; the buffer goes
    /// back to the reading thread when `body` returns (or throws). A chunk is never empty.
    public func withNextChunk<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result? {
        let slot: Int
        let offset: Int
        let count: Int
        if let current {
            (slot, offset, count) = current
            self.current = nil
        } else {
            guard let taken = try take() else { return nil }
            (slot, offset, count) = (taken.slot, 0, taken.count)
        }
        defer { ring.release() }
        return try body(UnsafeRawBufferPointer(start: ring.slotBase(slot) + offset, count: count - offset))
    }

    /// Waits for the next filled slot and returns it with its byte count; nil at the end; throws
    /// the wrapped source's error once its good bytes are all out.
    private func take() throws -> (slot: Int, count: Int)? {
        if let failure { throw failure }
        if ended { return nil }
        let (slot, fill) = ring.waitForFilled()
        rawBytesRead = fill.rawBytesRead
        switch fill.state {
        case .bytes:
            return (slot, fill.count)
        case .end:
            ended = true
        case .failure(let error):
            failure = error
        }
        ring.release()
        if let failure { throw failure }
        return nil
    }
}

/// What the reading thread left in a slot.
struct ReadAheadFill {
    enum State {
        case bytes
        case end
        case failure(any Error)
    }
    var state: State = .end
    var count = 0
    var rawBytesRead: Int64 = 0
}

/// The state shared by the consumer and the reading thread; every field but the slots' bytes is
/// guarded by `mutex`. A slot's bytes belong to the producer from `release` until it publishes
/// them, then to the consumer until it releases them, so they need no lock.
final class ReadAheadRing: @unchecked Sendable {
    let slotCount: Int
    let slotSize: Int
    private let storage: UnsafeMutableRawPointer
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let notEmpty: UnsafeMutablePointer<pthread_cond_t>
    private let notFull: UnsafeMutablePointer<pthread_cond_t>

    /// What each slot holds once published (guarded, like the counters below).
    private var fills: [ReadAheadFill]
    /// Next slot the producer fills / the consumer takes, and how many are filled (guarded).
    private var head = 0
    private var tail = 0
    private var filled = 0
    private var cancelled = false
    /// Taken by the thread when it starts; released when it stops.
    private var upstream: (any ByteSource)?

    init(upstream: any ByteSource, slotCount: Int, slotSize: Int) {
        self.upstream = upstream
        self.slotCount = slotCount
        self.slotSize = slotSize
        storage = .allocate(byteCount: slotCount * slotSize, alignment: 64)
        fills = Array(repeating: ReadAheadFill(), count: slotCount)
        mutex = .allocate(capacity: 1)
        notEmpty = .allocate(capacity: 1)
        notFull = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(notEmpty, nil)
        pthread_cond_init(notFull, nil)
    }

    deinit {
        pthread_cond_destroy(notFull)
        pthread_cond_destroy(notEmpty)
        pthread_mutex_destroy(mutex)
        notFull.deallocate()
        notEmpty.deallocate()
        mutex.deallocate()
        storage.deallocate()
    }

    @inline(__always)
    func slotBase(_ slot: Int) -> UnsafeMutableRawPointer { storage + slot * slotSize }

    // MARK: Consumer side

    /// Blocks until a slot is filled and returns it (it stays the consumer's until `release`).
    func waitForFilled() -> (slot: Int, fill: ReadAheadFill) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while filled == 0 { pthread_cond_wait(notEmpty, mutex) }
        return (tail, fills[tail])
    }

    /// Gives the oldest taken slot back to the producer.
    func release() {
        pthread_mutex_lock(mutex)
        tail = (tail + 1) % slotCount
        filled -= 1
        pthread_cond_signal(notFull)
        pthread_mutex_unlock(mutex)
    }

    func cancel() {
        pthread_mutex_lock(mutex)
        cancelled = true
        pthread_cond_broadcast(notFull)
        pthread_mutex_unlock(mutex)
    }

    // MARK: Producer side

    /// Blocks until a slot is free; nil once cancelled.
    private func waitForFree() -> Int? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while filled == slotCount && !cancelled { pthread_cond_wait(notFull, mutex) }
        return cancelled ? nil : head
    }

    private func publish(_ slot: Int, _ fill: ReadAheadFill) {
        pthread_mutex_lock(mutex)
        fills[slot] = fill
        head = (head + 1) % slotCount
        filled += 1
        pthread_cond_signal(notEmpty)
        pthread_mutex_unlock(mutex)
    }

    /// The thread's body: fill slots until the end, an error, or cancellation.
    func produce() {
        pthread_mutex_lock(mutex)
        let source = upstream
        upstream = nil
        pthread_mutex_unlock(mutex)
        guard let source else { return }
        while let slot = waitForFree() {
            // Fill the slot completely (gzip hands out less whenever its input buffer runs dry),
            // so the consumer gets few, large chunks.
            let base = slotBase(slot)
            var count = 0
            var last: ReadAheadFill.State = .bytes
            while count < slotSize {
                do {
                    let n = try source.read(into: UnsafeMutableRawBufferPointer(start: base + count, count: slotSize - count))
                    if n == 0 {
                        last = .end
                        break
                    }
                    count += n
                } catch {
                    last = .failure(error)
                    break
                }
            }
            if count > 0 {
                publish(slot, ReadAheadFill(state: .bytes, count: count, rawBytesRead: source.rawBytesRead))
                if case .bytes = last { continue }
                // The end or the error goes in a slot of its own, after the good bytes.
                guard let next = waitForFree() else { return }
                publish(next, ReadAheadFill(state: last, count: 0, rawBytesRead: source.rawBytesRead))
            } else {
                publish(slot, ReadAheadFill(state: last, count: 0, rawBytesRead: source.rawBytesRead))
            }
            return
        }
    }

    static func startThread(_ ring: ReadAheadRing) -> pthread_t {
        let context = Unmanaged.passRetained(ring).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t?
        #else
        var thread = pthread_t()
        #endif
        let status = pthread_create(
            &thread, nil,
            { context in
                let opaque: UnsafeMutableRawPointer? = context
                let ring = Unmanaged<ReadAheadRing>.fromOpaque(opaque!).takeRetainedValue()
                ring.produce()
                return nil
            }, context)
        precondition(status == 0, "could not start the read-ahead thread (pthread_create: \(status))")
        #if canImport(Darwin)
        return thread!
        #else
        return thread
        #endif
    }
}
