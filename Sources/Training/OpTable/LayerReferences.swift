// Naive float64 references for the layer cases: written from the definitions, index by index, sharing no code
// with the fast kernels they check.

/// BatchNormalization in training mode over x [batch, channels, spatial]: each channel normalised with its
/// batch mean and biased variance, then scaled by gamma and shifted by beta.
func referenceBatchNorm(_ x: [Double], gamma: [Double], beta: [Double], channels: Int, spatial: Int,
                        epsilon: Double) -> [Double] {
    let batch = x.count / (channels * spatial)
    func index(_ b: Int, _ c: Int, _ s: Int) -> Int { (b * channels + c) * spatial + s }
    var y = [Double](repeating: 0, count: x.count)
    for c in 0..<channels {
        var values: [Double] = []
        for b in 0..<batch { for s in 0..<spatial { values.append(x[index(b, c, s)]) } }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
        for b in 0..<batch {
            for s in 0..<spatial {
                y[index(b, c, s)] = gamma[c] * (x[index(b, c, s)] - mean) / (variance + epsilon).squareRoot() + beta[c]
            }
        }
    }
    return y
}

/// y[p, i, j] = x[p, i / factorH, j / factorW].
func referenceUpsample(_ x: [Double], planes: Int, height: Int, width: Int, factorH: Int, factorW: Int) -> [Double] {
    var y: [Double] = []
    for p in 0..<planes {
        for i in 0..<height * factorH {
            for j in 0..<width * factorW { y.append(x[(p * height + i / factorH) * width + j / factorW]) }
        }
    }
    return y
}

/// y[p, i, j] = x[p, i − top, j − left] inside, 0 elsewhere.
func referencePad(_ x: [Double], planes: Int, height: Int, width: Int, top: Int, left: Int, bottom: Int,
                  right: Int) -> [Double] {
    var y: [Double] = []
    for p in 0..<planes {
        for i in 0..<height + top + bottom {
            for j in 0..<width + left + right {
                let (si, sj) = (i - top, j - left)
                y.append(si >= 0 && si < height && sj >= 0 && sj < width ? x[(p * height + si) * width + sj] : 0)
            }
        }
    }
    return y
}

/// y[r, o] = Σ_i x[r, i] · w[i, o] + b[o].
func referenceDense(_ x: [Double], w: [Double], b: [Double], rows: Int, inFeatures: Int, outFeatures: Int) -> [Double] {
    var y: [Double] = []
    for r in 0..<rows {
        for o in 0..<outFeatures {
            var sum = b[o]
            for i in 0..<inFeatures { sum += x[r * inFeatures + i] * w[i * outFeatures + o] }
            y.append(sum)
        }
    }
    return y
}

/// Each row of x [rows, dim] divided by its Euclidean norm (the definition, in float64).
func referenceL2Normalize(_ x: [Double], rows: Int, dim: Int) -> [Double] {
    (0..<rows).flatMap { r -> [Double] in
        let row = x[(r * dim)..<((r + 1) * dim)]
        let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return row.map { $0 / norm }
    }
}
