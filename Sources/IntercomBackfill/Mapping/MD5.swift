/// MD5 (RFC 1321), only to derive a company id from its name (contract §5): a tiny, cold path
/// that does not justify depending on a crypto package.
enum MD5 {
    private static let shifts: [UInt32] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
        5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ]
    /// floor(abs(sin(i + 1)) * 2^32)
    private static let constants: [UInt32] = (0..<64).map { i in
        UInt32(truncatingIfNeeded: Int64((abs(sin(Double(i + 1))) * 4_294_967_296.0).rounded(.down)))
    }

    /// The lowercase hex digest of `message`.
    static func hexDigest<Bytes: Collection>(_ message: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        Array(message).withUnsafeBytes { appendHexDigest(of: $0, to: &out) }
        return out
    }

    /// Appends the 32 lowercase hex digits of the digest of `message`, allocating nothing:
    /// the message is read in place and only its last one or two blocks are padded, on the stack.
    static func appendHexDigest<Out: JSONOutput>(of message: UnsafeRawBufferPointer, to out: inout Out) {
        var state: (UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476)
        let whole = message.count / 64
        for block in 0..<whole {
            compress(&state, message.baseAddress! + block * 64)
        }
        // The tail, 0x80, zeros, and the length in bits: one block, or two when the tail is 56 bytes or more.
        withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { tail in
            tail.initializeMemory(as: UInt8.self, repeating: 0)
            let rest = message.count - whole * 64
            if rest > 0 { tail.baseAddress!.copyMemory(from: message.baseAddress! + whole * 64, byteCount: rest) }
            tail[rest] = 0x80
            let blocks = rest < 56 ? 1 : 2
            let bitLength = UInt64(message.count) &* 8
            for k in 0..<8 { tail[blocks * 64 - 8 + k] = UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(k))) }
            for block in 0..<blocks { compress(&state, UnsafeRawPointer(tail.baseAddress! + block * 64)) }
        }
        appendHex(state.0, to: &out)
        appendHex(state.1, to: &out)
        appendHex(state.2, to: &out)
        appendHex(state.3, to: &out)
    }

    /// A state word's 4 bytes, low byte first, as 8 hex digits.
    private static func appendHex<Out: JSONOutput>(_ word: UInt32, to out: inout Out) {
        let hex: StaticString = "0123456789abcdef"
        for k in 0..<4 {
            let byte = UInt8(truncatingIfNeeded: word >> (8 * UInt32(k)))
            out.append(hex.utf8Start[Int(byte >> 4)])
            out.append(hex.utf8Start[Int(byte & 0xF)])
        }
    }

    private static func compress(_ state: inout (UInt32, UInt32, UInt32, UInt32), _ block: UnsafeRawPointer) {
        var a = state.0
        var b = state.1
        var c = state.2
        var d = state.3
        for i in 0..<64 {
            var f: UInt32
            let g: Int
            switch i {
            case 0..<16:
                f = (b & c) | (~b & d)
                g = i
            case 16..<32:
                f = (d & b) | (~d & c)
                g = (5 * i + 1) % 16
            case 32..<48:
                f = b ^ c ^ d
                g = (3 * i + 5) % 16
            default:
                f = c ^ (b | ~d)
                g = (7 * i) % 16
            }
            let word = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: g * 4, as: UInt32.self))
            f = f &+ a &+ constants[i] &+ word
            a = d
            d = c
            c = b
            b = b &+ ((f << shifts[i]) | (f >> (32 - shifts[i])))
        }
        state.0 = state.0 &+ a
        state.1 = state.1 &+ b
        state.2 = state.2 &+ c
        state.3 = state.3 &+ d
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#elseif canImport(Musl)
import Musl
#endif
