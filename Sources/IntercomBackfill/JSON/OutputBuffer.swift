/// Where JSON text is written: a `[UInt8]`, or the mapper's ``OutputBuffer``.
///
/// The writers are generic over it so the cold paths (rejects, messages) keep using arrays while
/// the hot path writes into a buffer whose appends are a bounds check and a `memcpy`.
public protocol JSONOutput {
    var count: Int { get }
    mutating func append(_ byte: UInt8)
    mutating func appendBytes(_ bytes: UnsafeRawBufferPointer)
}

extension Array: JSONOutput where Element == UInt8 {
    @inline(__always)
    public mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) {
        append(contentsOf: bytes)
    }
}

/// A growable byte buffer for the mapper's output and scratch text.
///
/// An `Array<UInt8>` append checks uniqueness (a runtime call) and goes through generic
/// sequence code; here an append is a capacity check and a copy. Copies of a `OutputBuffer` share
/// memory until ``makeUnique()``: the owner (`RecordMapper`) calls it once before writing, which
/// keeps the owner a value type at the cost of one check per record, not one per byte.
struct OutputBuffer: JSONOutput {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private(set) var capacity: Int
    private var storage: Storage

    private final class Storage {
        let pointer: UnsafeMutablePointer<UInt8>
        init(capacity: Int) { pointer = .allocate(capacity: capacity) }
        deinit { pointer.deallocate() }
    }

    init(capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        storage = Storage(capacity: self.capacity)
        base = storage.pointer
    }

    /// Gives this buffer memory of its own if a copy shares it.
    @inline(__always)
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { reallocate(capacity) }
    }

    private mutating func reallocate(_ newCapacity: Int) {
        let fresh = Storage(capacity: newCapacity)
        fresh.pointer.update(from: base, count: count)
        storage = fresh
        base = fresh.pointer
        capacity = newCapacity
    }

    @inline(never)
    private mutating func grow(toHold needed: Int) {
        reallocate(max(needed, capacity * 2))
    }

    @inline(__always)
    mutating func reserveAdditional(_ n: Int) {
        if count &+ n > capacity { grow(toHold: count + n) }
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        if count == capacity { grow(toHold: count + 1) }
        base[count] = byte
        count &+= 1
    }

    @inline(__always)
    mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) {
        guard let from = bytes.baseAddress else { return }
        appendRaw(from, bytes.count)
    }

    @inline(__always)
    mutating func appendBytes(_ pointer: UnsafePointer<UInt8>, _ n: Int) {
        appendRaw(UnsafeRawPointer(pointer), n)
    }

    @inline(__always)
    private mutating func appendRaw(_ from: UnsafeRawPointer, _ n: Int) {
        guard n > 0 else { return }
        reserveAdditional(n)
        let to = UnsafeMutableRawPointer(base + count)
        if n <= 16 {
            // Short pieces (keys, ids, quotes) are most appends: two overlapping 8-byte moves
            // (or a byte loop under 8) beat a call to memcpy.
            if n >= 8 {
                to.storeBytes(of: from.loadUnaligned(as: UInt64.self), as: UInt64.self)
                (to + (n &- 8)).storeBytes(of: from.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self), as: UInt64.self)
            } else {
                for k in 0..<n {
                    to.storeBytes(of: from.load(fromByteOffset: k, as: UInt8.self), toByteOffset: k, as: UInt8.self)
                }
            }
        } else {
            to.copyMemory(from: from, byteCount: n)
        }
        count &+= n
    }

    @inline(__always)
    mutating func append(_ other: OutputBuffer) {
        appendBytes(other.base, other.count)
    }

    @inline(__always)
    mutating func append(_ literal: StaticString) {
        appendBytes(literal.utf8Start, literal.utf8CodeUnitCount)
    }

    /// Forgets the contents, keeping the memory.
    @inline(__always)
    mutating func removeAll() { count = 0 }

    /// Drops everything from `newCount` on.
    @inline(__always)
    mutating func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count)
        count = newCount
    }

    var isEmpty: Bool { count == 0 }
    var last: UInt8? { count > 0 ? base[count - 1] : nil }

    @inline(__always)
    subscript(_ index: Int) -> UInt8 {
        get { base[index] }
        set { base[index] = newValue }
    }

    /// The bytes; valid until the next append.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// The bytes in `start..<end`; valid until the next append.
    @inline(__always)
    func bytes(_ start: Int, _ end: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + start, count: end - start)
    }
}
