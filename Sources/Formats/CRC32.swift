import Foundation

/// CRC-32 (IEEE 802.3, as ZIP and the checkpoint seal use it).
public enum CRC32 {
    static let table = lookupTable(polynomial: 0xEDB8_8320)

    /// The byte-at-a-time table of a reflected CRC-32 with `polynomial` (shared with CRC-32C).
    static func lookupTable(polynomial: UInt32) -> [UInt32] {
        (0..<256).map { n -> UInt32 in
            var c = UInt32(n)
            for _ in 0..<8 { c = c & 1 != 0 ? polynomial ^ (c >> 1) : c >> 1 }
            return c
        }
    }

    public static func checksum(_ data: Data) -> UInt32 {
        var running = Running()
        running.update(data)
        return running.value
    }

    /// A CRC over data that arrives in pieces.
    public struct Running {
        private var c: UInt32 = 0xFFFF_FFFF
        public init() {}

        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            var c = self.c
            CRC32.table.withUnsafeBufferPointer { table in
                for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
            }
            self.c = c
        }

        public mutating func update(_ data: Data) { data.withUnsafeBytes { update($0) } }

        public var value: UInt32 { c ^ 0xFFFF_FFFF }
    }
}
