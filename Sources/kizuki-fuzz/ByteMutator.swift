import Foundation

/// Format-blind mutations of a file's bytes: what a damaged download or a careless edit does.
enum ByteMutator {
    /// One to three of: bit flips, truncation, a splice from `donor`, a protobuf length edit,
    /// a run of random bytes, an interesting integer written over some bytes, a duplicated slice.
    static func mutate(_ data: Data, donor: Data, _ rng: inout TrialRandom) -> Data {
        var bytes = [UInt8](data)
        for _ in 0..<rng.int(in: 1...3) { mutateOnce(&bytes, donor: donor, &rng) }
        return Data(bytes)
    }

    static func mutateOnce(_ bytes: inout [UInt8], donor: Data, _ rng: inout TrialRandom) {
        guard !bytes.isEmpty else { bytes = [UInt8](donor.prefix(rng.below(64))); return }
        let at = rng.below(bytes.count)
        switch rng.below(7) {
        case 0:  // flip a few bits
            for _ in 0..<rng.int(in: 1...8) { bytes[rng.below(bytes.count)] ^= UInt8(1) << UInt8(rng.below(8)) }
        case 1:  // truncate
            bytes.removeSubrange(at...)
        case 2:  // splice in a slice of the donor
            let donorBytes = [UInt8](donor)
            guard !donorBytes.isEmpty else { return }
            let from = rng.below(donorBytes.count), length = rng.int(in: 1...256)
            bytes.replaceSubrange(at..<min(bytes.count, at + rng.below(length)),
                                  with: donorBytes[min(from, donorBytes.count)..<min(donorBytes.count, from + length)])
        case 3:  // edit the length of a length-delimited protobuf field (a tag byte with wire type 2, then a varint)
            for _ in 0..<256 where bytes.count >= 2 {
                let i = rng.below(bytes.count - 1)
                guard bytes[i] & 7 == 2, bytes[i] >> 3 > 0 else { continue }
                bytes[i + 1] = bytes[i + 1] &+ rng.pick([1, 0x7f, 0xff, 0x80, 2]) 
                if rng.chance(0.3), i + 2 < bytes.count { bytes[i + 2] |= 0x80 }  // make the varint longer
                break
            }
        case 4:  // overwrite a run with random bytes
            for i in at..<min(bytes.count, at + rng.int(in: 1...16)) { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
        case 5:  // write an interesting integer, little or big endian, 4 or 8 bytes wide
            let value = UInt64(bitPattern: rng.interestingInt())
            let width = rng.chance(0.5) ? 4 : 8, bigEndian = rng.chance(0.5)
            for k in 0..<width where at + k < bytes.count {
                let shift = UInt64(8 * (bigEndian ? width - 1 - k : k))
                bytes[at + k] = UInt8(truncatingIfNeeded: value >> shift)
            }
        default:  // duplicate a slice (grows the file; shifts everything after it)
            let end = min(bytes.count, at + rng.int(in: 1...512))
            bytes.insert(contentsOf: bytes[at..<end], at: rng.below(bytes.count))
        }
    }
}
