import Anomaly
import CZlib
import Foundation

/// Structure-aware mutations of the data files the CLI reads: each edits the fields its parser
/// trusts (sizes in headers, element types, checksummed chunks) and otherwise leaves the file
/// well formed, so the input gets past the first check. Half the time bytes are mutated as well.
enum FileMutators {
    static func mutate(_ kind: TrialKind, _ data: Data, _ rng: inout TrialRandom) -> Data {
        var out = data
        if rng.chance(0.75) {
            switch kind {
            case .npy: out = npy(out, &rng)
            case .kzi: out = kzi(out, &rng)
            case .idx, .idxGzip: out = idx(out, &rng)
            case .png: out = png(out, &rng)
            case .model: break
            }
        }
        if out == data || rng.chance(0.4) { out = ByteMutator.mutate(out, donor: data, &rng) }
        return out
    }

    /// .npy: the header dict rewritten with another shape, element type or order, or a wrong header length.
    static func npy(_ data: Data, _ rng: inout TrialRandom) -> Data {
        guard data.count > 10 else { return data }
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        guard data.count >= 10 + headerLength else { return data }
        var header = String(decoding: data[10..<(10 + headerLength)], as: UTF8.self)
        let payload = data[(10 + headerLength)...]
        switch rng.below(4) {
        case 0:
            let dims = (0..<rng.int(in: 0...5)).map { _ in String(rng.chance(0.5) ? rng.sizeLike() : Int64(rng.int(in: 1...28))) }
            header = replacing(field: "shape", in: header, with: "(" + dims.joined(separator: ", ") + (dims.count == 1 ? ",)" : ")"))
        case 1: header = replacing(field: "descr", in: header, with: "'" + rng.pick(["<f4", "<f8", "|u1", "<i8", "<i4", "|b1", "<f2", ">f4", "<c8", "|O", "<U3", ""]) + "'")
        case 2: header = replacing(field: "fortran_order", in: header, with: rng.pick(["True", "False", "1", ""]))
        default:
            var out = data
            let value = UInt16(truncatingIfNeeded: rng.interestingInt())
            out[8] = UInt8(value & 0xff); out[9] = UInt8(value >> 8)
            return out
        }
        let headerBytes = [UInt8](header.utf8)
        let length = UInt16(truncatingIfNeeded: headerBytes.count)
        return data.prefix(8) + Data([UInt8(length & 0xff), UInt8(length >> 8)] + headerBytes) + payload
    }

    static func replacing(field key: String, in header: String, with value: String) -> String {
        guard let r = header.range(of: "'\(key)': ") else { return header }
        let rest = header[r.upperBound...]
        let end: String.Index
        if rest.first == "(" { end = rest.firstIndex(of: ")").map { header.index(after: $0) } ?? header.endIndex } else {
            end = rest.dropFirst().firstIndex { $0 == "," || $0 == "}" } ?? header.endIndex
        }
        return String(header[..<r.upperBound]) + value + String(header[end...])
    }

    /// .kzi: header JSON fields (count, dim, threshold...) set to interesting values, or the payload cut, grown or made non-finite.
    static func kzi(_ data: Data, _ rng: inout TrialRandom) -> Data {
        guard let newline = data.dropFirst(5).firstIndex(of: UInt8(ascii: "\n")),
              var header = (try? JSONSerialization.jsonObject(with: data[5..<newline])) as? [String: Any] else { return data }
        // Format 2 ends with the SHA-256 of what precedes it: mutate what it covers, then usually seal it
        // again so the mutation reaches the checks behind the checksum (the rest of the time it must catch it).
        guard data.count >= newline + 1 + 32 else { return data }
        let oldChecksum = data.suffix(32)
        var payload = data[(newline + 1)..<(data.count - 32)]
        switch rng.below(5) {
        case 0: header[rng.pick(["count", "dim"])] = rng.interestingInt()
        case 1:
            var threshold = (header["threshold"] as? [String: Any]) ?? ["targetFPR": 0.01, "rule": "", "calibratedOn": "", "normalCount": 3, "indexID": ""]
            // JSON has no NaN or infinity; those make serialization fail and the trial falls back to byte mutations.
            threshold[rng.pick(["value", "targetFPR", "normalCount"])] = rng.chance(0.5) ? Double(rng.interestingFloat()) : Double(rng.interestingInt())
            if threshold["value"] == nil { threshold["value"] = 0.5 }
            header["threshold"] = threshold
        case 2: header.removeValue(forKey: rng.pick(Array(header.keys).sorted()))
        case 3:
            payload = rng.chance(0.5) ? payload.prefix(rng.below(payload.count + 1)) : payload + Data(count: 4 * rng.int(in: 1...64))
        default:
            if payload.count >= 4 {
                var bytes = [UInt8](payload)
                let at = rng.below(bytes.count / 4) * 4
                withUnsafeBytes(of: rng.interestingFloat().bitPattern.littleEndian) { for k in 0..<4 { bytes[at + k] = $0[k] } }
                payload = Data(bytes)
            }
        }
        guard let json = try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]) else { return data }
        let body = data.prefix(5) + json + Data("\n".utf8) + payload
        guard rng.chance(0.8) else { return body + oldChecksum }
        var hash = SHA256()
        hash.update(body)
        return body + Data(hash.finalize())
    }

    /// IDX: dims set to interesting 32-bit values (their product overflows), another rank or element type, or the data cut.
    static func idx(_ data: Data, _ rng: inout TrialRandom) -> Data {
        guard data.count >= 8 else { return data }
        var bytes = [UInt8](data)
        let rank = Int(bytes[3])
        switch rng.below(4) {
        case 0, 1:  // one to three dims: two huge ones make a product that overflows Int
            for _ in 0..<rng.int(in: 1...3) {
                let at = 4 + 4 * rng.below(max(rank, 1))
                let value = UInt32(truncatingIfNeeded: rng.chance(0.7) ? rng.interestingInt() : Int64(rng.int(in: 0...64)))
                for k in 0..<4 where at + k < bytes.count { bytes[at + k] = UInt8(truncatingIfNeeded: value >> UInt32(8 * (3 - k))) }
            }
        case 2: bytes[rng.chance(0.7) ? 3 : 2] = UInt8(truncatingIfNeeded: rng.pick([0, 1, 2, 3, 4, 5, 0x08, 0x09, 0x0D, 255]))
        default: bytes = Array(bytes.prefix(rng.below(bytes.count + 1))) + (rng.chance(0.5) ? [] : [UInt8](repeating: 7, count: rng.int(in: 1...900)))
        }
        return Data(bytes)
    }

    /// PNG: a chunk's fields edited with its CRC recomputed (so libpng reads on), or a chunk dropped or repeated.
    static func png(_ data: Data, _ rng: inout TrialRandom) -> Data {
        var chunks: [(type: [UInt8], body: [UInt8])] = []
        var at = 8
        let bytes = [UInt8](data)
        while at + 12 <= bytes.count {
            let length = Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
            guard at + 12 + length <= bytes.count else { break }
            chunks.append((Array(bytes[at + 4..<at + 8]), Array(bytes[at + 8..<at + 8 + length])))
            at += 12 + length
        }
        guard !chunks.isEmpty else { return data }
        let c = rng.below(chunks.count)
        switch rng.below(4) {
        case 0, 1:
            guard chunks[c].body.count >= 4 else { break }
            // IHDR: width, height (4 bytes each), bit depth, colour type...; other chunks: any field.
            let at = chunks[c].type == Array("IHDR".utf8) ? rng.pick([0, 4, 8, 9, 10, 11, 12]) : rng.below(chunks[c].body.count)
            let value = UInt32(truncatingIfNeeded: rng.chance(0.6) ? rng.interestingInt() : Int64(rng.int(in: 0...16)))
            let width = at < 8 ? 4 : 1
            for k in 0..<width where at + k < chunks[c].body.count {
                chunks[c].body[at + k] = UInt8(truncatingIfNeeded: value >> UInt32(8 * (width - 1 - k)))
            }
        case 2: chunks.remove(at: c)
        default: chunks.insert(chunks[c], at: rng.below(chunks.count))
        }
        var out = Array(bytes.prefix(8))
        for chunk in chunks {
            let n = UInt32(chunk.body.count)
            out += [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + chunk.type + chunk.body
            let crc = UInt32(crc32(crc32(0, chunk.type, 4), chunk.body, UInt32(chunk.body.count)))
            out += [UInt8(crc >> 24), UInt8(crc >> 16 & 0xff), UInt8(crc >> 8 & 0xff), UInt8(crc & 0xff)]
        }
        return Data(out)
    }
}
