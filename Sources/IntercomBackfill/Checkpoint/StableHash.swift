/// A fast, stable 64-bit hash (FNV-1a over 8-byte words, then a final mix) for fingerprints and
/// the skipped-prefix check. Not cryptographic: it only has to tell one archive from another.
public struct StableHash: Sendable {
    private var state: UInt64 = 0xCBF2_9CE4_8422_2325
    public private(set) var length: Int64 = 0

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var k = 0
        let n = bytes.count
        while k + 8 <= n {
            let word = bytes.loadUnaligned(fromByteOffset: k, as: UInt64.self)
            state = (state ^ word) &* 0x0000_0100_0000_01B3
            state ^= state >> 29
            k += 8
        }
        while k < n {
            state = (state ^ UInt64(bytes[k])) &* 0x0000_0100_0000_01B3
            k += 1
        }
        length += Int64(n)
    }

    /// The mixed state and length.
    public var value: UInt64 {
        var x = state ^ UInt64(bitPattern: length)
        x = (x ^ (x >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        x = (x ^ (x >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        return x ^ (x >> 33)
    }

    /// Lowercase hex of `value`.
    public var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    public static func value(of bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash = StableHash()
        hash.update(bytes)
        return hash.value
    }

    public static func hex(of bytes: UnsafeRawBufferPointer) -> String {
        var hash = StableHash()
        hash.update(bytes)
        return hash.hex
    }
}
