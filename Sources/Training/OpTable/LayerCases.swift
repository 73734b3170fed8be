import Engine

extension OpTable {
    /// BatchNormalization, ReLU6, Add, nearest upsample, Pad, GlobalAveragePool, Dense, L2 normalisation.
    /// `.timing` holds the network's shapes at batch 128 (MobileNetV2 on the 84x84 upsampled input).
    static func layerCases(_ size: GradCaseSize, threads: Int) -> [GradCase] {
        let timing = size == .timing
        // (batch, channels, spatial): BatchNormalization after every convolution of the network, each distinct
        // (channels, H·W) once; for checking, spatial 1 (a Dense-like [N, C]) and batch 2 included (not both: with
        // two values per channel the output no longer depends on x, and dx is rounding noise), and
        // spatial 700 (2 channels per block of BatchNormTraining: blocks of 2 and 1 channels, on 2 threads).
        let batchNorms: [(Int, Int, Int)] = timing
            ? [(32, 42), (16, 42), (96, 42), (96, 21), (24, 21), (144, 21), (144, 11), (32, 11), (192, 11), (192, 6),
               (64, 6), (384, 6), (96, 6), (576, 6), (576, 3), (160, 3), (960, 3), (320, 3), (1280, 3)]
                .map { (128, $0.0, $0.1 * $0.1) }
            : [(2, 3, 2), (7, 4, 1), (2, 3, 9), (3, 2, 37), (1, 3, 50), (1, 3, 700)]
        // [batch, channels, side, side]: the largest ReLU6 inputs (block 1's expand, block 2's expand, Conv1).
        let relu6s = timing ? [[128, 96, 42, 42], [128, 144, 21, 21], [128, 32, 42, 42]] : [[2, 3, 7, 11], [1030]]
        // The residual Adds of blocks 2, 4, 7, 11, 14.
        let adds = timing ? [[128, 24, 21, 21], [128, 32, 11, 11], [128, 64, 6, 6], [128, 96, 6, 6], [128, 160, 3, 3]]
                          : [[2, 3, 5, 7]]
        // (planes, height, width, factorH, factorW): the input upsample.
        let upsamples = timing ? [(128, 28, 28, 3, 3)] : [(2, 4, 5, 3, 3), (3, 3, 2, 2, 3), (1, 2, 19, 3, 3)]
        // (planes, side, top, left, bottom, right): the ZeroPadding2D before each stride-2 convolution.
        let pads: [(Int, Int, Int, Int, Int, Int)] = timing
            ? [(128, 84, 0, 0, 1, 1), (128 * 96, 42, 0, 0, 1, 1), (128 * 144, 21, 1, 1, 1, 1), (128 * 192, 11, 1, 1, 1, 1),
               (128 * 576, 6, 0, 0, 1, 1)]
            : [(3, 5, 0, 0, 1, 1), (2, 6, 1, 1, 1, 1), (2, 4, 2, 1, 0, 3)]
        // (planes, spatial): the pool over Conv_1's 1280 x 3x3.
        let pools = timing ? [(128 * 1280, 9)] : [(10, 9), (4, 37)]
        // (rows, in, out): the embedding head.
        let denses = timing ? [(128, 1280, 128)] : [(4, 20, 7), (3, 33, 17)]
        // (rows, dim): the L2 normalisation of the embeddings (`--l2-normalize`).
        let l2s = timing ? [(128, 128)] : [(5, 7), (2, 128)]

        return batchNorms.map { batchNormCase(batch: $0.0, channels: $0.1, spatial: $0.2, threads: threads) }
            + relu6s.map { relu6Case(shape: $0, threads: threads) }
            + adds.map { addCase(shape: $0, threads: threads) } + (timing ? [] : [addTwiceCase(shape: [3, 37], threads: threads)])
            + upsamples.map {
                upsampleCase(planes: $0.0, height: $0.1, width: $0.2, factorH: $0.3, factorW: $0.4, threads: threads)
            }
            + pads.map { padCase(planes: $0.0, side: $0.1, top: $0.2, left: $0.3, bottom: $0.4, right: $0.5, threads: threads) }
            + pools.map { globalAveragePoolCase(planes: $0.0, spatial: $0.1, threads: threads) }
            + denses.map { denseCase(rows: $0.0, inFeatures: $0.1, outFeatures: $0.2, threads: threads) }
            + l2s.map { l2NormalizeCase(rows: $0.0, dim: $0.1) }
    }

    /// y = x / ‖x‖ per row of x [rows, dim]; the backward reads the forward's y and norms.
    static func l2NormalizeCase(rows: Int, dim: Int) -> GradCase {
        let count = rows * dim
        let y = ReusedArray(), norm = ReusedArray(), dx = ReusedArray(), saved = SavedForward()
        func forward(_ inputs: [[Float]]) -> [Float] {
            saved.remember(inputs)
            return withFloatPointers(inputs) { p in
                y.write(count: count) { y in
                    _ = norm.write(count: rows) { L2NormalizeTraining.forward(x: p[0], y: y, norm: $0, rows: rows, dim: dim) }
                }
            }
        }
        return GradCase(
            op: "L2Normalize", name: "\(rows)x\(dim)", inputShapes: [[rows, dim]], outputShape: [rows, dim],
            reference: { referenceL2Normalize($0[0], rows: rows, dim: dim) },
            forward: forward,
            backward: { inputs, g in
                if !saved.matches(inputs) { _ = forward(inputs) }
                return withFloatPointers([y.array, norm.array, g]) { p in
                    [dx.write(count: count) { L2NormalizeTraining.backward(y: p[0], norm: p[1], dy: p[2], dx: $0, rows: rows, dim: dim) }]
                }
            })
    }

    /// Inputs x [batch, channels, spatial], gamma, beta; Keras's epsilon and momentum. The moving statistics
    /// are updated into throwaway buffers here (BatchNormStatisticsTests checks them).
    static func batchNormCase(batch: Int, channels: Int, spatial: Int, threads: Int) -> GradCase {
        let s = BatchNormShape(batch: batch, channels: channels, spatial: spatial, epsilon: 1e-3, momentum: 0.999)
        let y = ReusedArray(), mean = ReusedArray(), invStd = ReusedArray()
        let movingMean = ReusedArray(), movingVariance = ReusedArray()
        let dx = ReusedArray(), dgamma = ReusedArray(), dbeta = ReusedArray()
        let saved = SavedForward()
        func forward(_ inputs: [[Float]]) -> [Float] {
            saved.remember(inputs)
            return withFloatPointers(inputs) { p in
                y.write(count: s.count) { y in
                    _ = mean.write(count: channels) { mean in
                        _ = invStd.write(count: channels) { invStd in
                            _ = movingMean.write(count: channels) { mm in
                                _ = movingVariance.write(count: channels) { mv in
                                    mm.update(repeating: 0, count: channels); mv.update(repeating: 1, count: channels)
                                    BatchNormTraining.forward(s, x: p[0], gamma: p[1], beta: p[2], y: y, mean: mean,
                                                              invStd: invStd, movingMean: mm, movingVariance: mv,
                                                              besselCorrected: true, threads: threads)
                                }
                            }
                        }
                    }
                }
            }
        }
        return GradCase(
            op: "BatchNormalization", name: "\(batch)x\(channels)x\(spatial)",
            inputShapes: [[batch, channels, spatial], [channels], [channels]],
            inputRanges: [-2...3, 0.5...1.5, -1...1], outputShape: [batch, channels, spatial],
            reference: {
                referenceBatchNorm($0[0], gamma: $0[1], beta: $0[2], channels: channels, spatial: spatial, epsilon: 1e-3)
            },
            forward: forward,
            backward: { inputs, g in
                if !saved.matches(inputs) { _ = forward(inputs) }
                let (m, istd) = (mean.array, invStd.array)
                return withFloatPointers(inputs + [g, m, istd]) { p in
                    var gradients: [[Float]?] = []
                    _ = dgamma.write(count: channels) { dgamma in
                        _ = dbeta.write(count: channels) { dbeta in
                            gradients = [dx.write(count: s.count) { dx in
                                BatchNormTraining.backward(s, x: p[0], dy: p[3], gamma: p[1], mean: p[4], invStd: p[5],
                                                           dx: dx, dgamma: dgamma, dbeta: dbeta, threads: threads)
                            }]
                        }
                    }
                    return gradients + [dgamma.array, dbeta.array]
                }
            })
    }

    /// ReLU6 on inputs drawn from (−3, −0.1) ∪ (0.1, 5.9) ∪ (6.1, 9): every region, no kink within a
    /// finite-difference step.
    static func relu6Case(shape: [Int], threads: Int) -> GradCase {
        let count = shape.reduce(1, *)
        let y = ReusedArray(), dx = ReusedArray(), saved = SavedForward()
        func forward(_ inputs: [[Float]]) -> [Float] {
            saved.remember(inputs)
            return withFloatPointers(inputs) { p in
                y.write(count: count) { Relu6Training.forward(x: p[0], y: $0, count: count, threads: threads) }
            }
        }
        return GradCase(
            op: "Relu6", name: shape.map(String.init).joined(separator: "x"), inputShapes: [shape], inputRanges: [0...11.6],
            inputMaps: [{ t in t < 2.9 ? t - 3 : t < 8.7 ? t - 2.8 : t - 2.6 }], outputShape: shape,
            reference: { $0[0].map { min(max($0, 0), 6) } },
            forward: forward,
            backward: { inputs, g in
                if !saved.matches(inputs) { _ = forward(inputs) }
                return withFloatPointers([y.array, g]) { p in
                    [dx.write(count: count) { Relu6Training.backward(y: p[0], dy: p[1], dx: $0, count: count, threads: threads) }]
                }
            })
    }

    /// a + b; both gradients are dy.
    static func addCase(shape: [Int], threads: Int) -> GradCase {
        let count = shape.reduce(1, *)
        let y = ReusedArray(), da = ReusedArray(), db = ReusedArray()
        return GradCase(
            op: "Add", name: shape.map(String.init).joined(separator: "x"), inputShapes: [shape, shape], outputShape: shape,
            reference: { zip($0[0], $0[1]).map { $0 + $1 } },
            forward: { inputs in
                withFloatPointers(inputs) { p in
                    y.write(count: count) { AddTraining.forward(a: p[0], b: p[1], y: $0, count: count, threads: threads) }
                }
            },
            backward: { _, g in
                // dL/da = dL/db = dy: the trainer passes dy on as is; copies here, as the table wants arrays.
                g.withUnsafeBufferPointer { dy in
                    [da.write(count: count) { $0.update(from: dy.baseAddress!, count: count) },
                     db.write(count: count) { $0.update(from: dy.baseAddress!, count: count) }]
                }
            })
    }

    /// y = a + (a + b), a residual input read twice: a's gradient is the sum of what both Adds send it.
    static func addTwiceCase(shape: [Int], threads: Int) -> GradCase {
        let count = shape.reduce(1, *)
        let y = ReusedArray(), t = ReusedArray(), da = ReusedArray(), db = ReusedArray()
        return GradCase(
            op: "Add", name: "a + (a + b) \(shape.map(String.init).joined(separator: "x"))", inputShapes: [shape, shape],
            outputShape: shape,
            reference: { zip($0[0], $0[1]).map { $0 + ($0 + $1) } },
            forward: { inputs in
                withFloatPointers(inputs) { p in
                    let sum = t.write(count: count) {
                        AddTraining.forward(a: p[0], b: p[1], y: $0, count: count, threads: threads)
                    }
                    return sum.withUnsafeBufferPointer { sum in
                        y.write(count: count) {
                            AddTraining.forward(a: p[0], b: sum.baseAddress!, y: $0, count: count, threads: threads)
                        }
                    }
                }
            },
            backward: { _, g in
                g.withUnsafeBufferPointer { dy in
                    let dy = dy.baseAddress!
                    // Outer Add: da = dy, dt = dy. Inner Add (t = a + b): da += dt, db = dt.
                    let a = da.write(count: count) { da in
                        da.update(from: dy, count: count)
                        AddTraining.accumulate(da, dy, count: count, threads: threads)
                    }
                    return [a, db.write(count: count) { $0.update(from: dy, count: count) }]
                }
            })
    }

    static func upsampleCase(planes: Int, height: Int, width: Int, factorH: Int, factorW: Int, threads: Int) -> GradCase {
        let outShape = [planes, height * factorH, width * factorW]
        let y = ReusedArray(), dx = ReusedArray()
        return GradCase(
            op: "UpsampleNearest", name: "\(planes)x\(height)x\(width) x(\(factorH),\(factorW))",
            inputShapes: [[planes, height, width]], outputShape: outShape,
            reference: {
                referenceUpsample($0[0], planes: planes, height: height, width: width, factorH: factorH, factorW: factorW)
            },
            forward: { inputs in
                withFloatPointers(inputs) { p in
                    y.write(count: outShape.reduce(1, *)) {
                        UpsampleNearestTraining.forward(x: p[0], y: $0, planes: planes, height: height, width: width,
                                                        factorH: factorH, factorW: factorW, threads: threads)
                    }
                }
            },
            backward: { _, g in
                withFloatPointers([g]) { p in
                    [dx.write(count: planes * height * width) {
                        UpsampleNearestTraining.backward(dy: p[0], dx: $0, planes: planes, height: height, width: width,
                                                         factorH: factorH, factorW: factorW, threads: threads)
                    }]
                }
            })
    }

    static func padCase(planes: Int, side: Int, top: Int, left: Int, bottom: Int, right: Int, threads: Int) -> GradCase {
        let outShape = [planes, side + top + bottom, side + left + right]
        let y = ReusedArray(), dx = ReusedArray()
        return GradCase(
            op: "Pad", name: "\(planes)x\(side)x\(side) pad(\(top),\(left),\(bottom),\(right))",
            inputShapes: [[planes, side, side]], outputShape: outShape,
            reference: {
                referencePad($0[0], planes: planes, height: side, width: side, top: top, left: left, bottom: bottom, right: right)
            },
            forward: { inputs in
                withFloatPointers(inputs) { p in
                    y.write(count: outShape.reduce(1, *)) {
                        Pad2DTraining.forward(x: p[0], y: $0, planes: planes, height: side, width: side, top: top, left: left,
                                              bottom: bottom, right: right, threads: threads)
                    }
                }
            },
            backward: { _, g in
                withFloatPointers([g]) { p in
                    [dx.write(count: planes * side * side) {
                        Pad2DTraining.backward(dy: p[0], dx: $0, planes: planes, height: side, width: side, top: top, left: left,
                                               bottom: bottom, right: right, threads: threads)
                    }]
                }
            })
    }

    static func globalAveragePoolCase(planes: Int, spatial: Int, threads: Int) -> GradCase {
        let y = ReusedArray(), dx = ReusedArray()
        return GradCase(
            op: "GlobalAveragePool", name: "\(planes)x\(spatial)", inputShapes: [[planes, spatial]], outputShape: [planes],
            reference: { x in (0..<planes).map { p in x[0][p * spatial..<(p + 1) * spatial].reduce(0, +) / Double(spatial) } },
            forward: { inputs in
                withFloatPointers(inputs) { p in
                    y.write(count: planes) {
                        GlobalAveragePoolTraining.forward(x: p[0], y: $0, planes: planes, spatial: spatial, threads: threads)
                    }
                }
            },
            backward: { _, g in
                withFloatPointers([g]) { p in
                    [dx.write(count: planes * spatial) {
                        GlobalAveragePoolTraining.backward(dy: p[0], dx: $0, planes: planes, spatial: spatial, threads: threads)
                    }]
                }
            })
    }

    /// x [rows, in] · w [in, out] + b [out]; OpenBLAS is loaded single-threaded as the trainer loads it.
    static func denseCase(rows: Int, inFeatures: Int, outFeatures: Int, threads: Int) -> GradCase {
        do { try BLAS.loadSingleThreaded() } catch { preconditionFailure("Dense needs OpenBLAS: \(error)") }
        let y = ReusedArray(), dx = ReusedArray(), dw = ReusedArray(), db = ReusedArray()
        return GradCase(
            op: "Dense", name: "\(rows)x\(inFeatures) -> \(outFeatures)",
            inputShapes: [[rows, inFeatures], [inFeatures, outFeatures], [outFeatures]], outputShape: [rows, outFeatures],
            reference: {
                referenceDense($0[0], w: $0[1], b: $0[2], rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
            },
            forward: { inputs in
                withFloatPointers(inputs) { p in
                    y.write(count: rows * outFeatures) {
                        DenseTraining.forward(x: p[0], w: p[1], b: p[2], y: $0, rows: rows, inFeatures: inFeatures,
                                              outFeatures: outFeatures, threads: threads)
                    }
                }
            },
            backward: { inputs, g in
                withFloatPointers(inputs + [g]) { p in
                    var gradients: [[Float]?] = []
                    _ = dw.write(count: inFeatures * outFeatures) { dw in
                        _ = db.write(count: outFeatures) { db in
                            gradients = [dx.write(count: rows * inFeatures) { dx in
                                DenseTraining.backward(x: p[0], w: p[1], dy: p[3], dx: dx, dw: dw, db: db, rows: rows,
                                                       inFeatures: inFeatures, outFeatures: outFeatures, threads: threads)
                            }]
                        }
                    }
                    return gradients + [dw.array, db.array]
                }
            })
    }
}
