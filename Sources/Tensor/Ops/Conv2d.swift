/// 2-D convolution (NCHW, PyTorch weight layout [Cout, Cin/groups, kh, kw]).
///
/// One op covers the three convolutions of the FastConformer subsampling: the 1→C 3×3
/// stride-2 stem, the depthwise 3×3 stride-2 (groups = C) and the pointwise 1×1.
public struct Conv2dGeometry: Equatable {
    public var stride: (Int, Int)
    public var padding: (Int, Int)
    public var groups: Int

    public init(stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0), groups: Int = 1) {
        self.stride = stride
        self.padding = padding
        self.groups = groups
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.stride == b.stride && a.padding == b.padding && a.groups == b.groups
    }

    /// Output height and width for an input of h × w and a kernel of kh × kw.
    func outputSize(h: Int, w: Int, kh: Int, kw: Int) -> (Int, Int) {
        ((h + 2 * padding.0 - kh) / stride.0 + 1, (w + 2 * padding.1 - kw) / stride.1 + 1)
    }
}

extension Tensor {
    public func conv2d(weight: Tensor, bias: Tensor?, _ geo: Conv2dGeometry) -> Tensor {
        precondition(rank == 4 && weight.rank == 4, "conv2d: input \(shape), weight \(weight.shape)")
        let (batch, cin, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (cout, cg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        precondition(cin == cg * geo.groups && cout % geo.groups == 0, "conv2d: \(cin) input channels, weight \(weight.shape), groups \(geo.groups)")
        let (ho, wo) = geo.outputSize(h: h, w: w, kh: kh, kw: kw)
        let device = Device.common("conv2d", [self, weight, bias])
        let out = Tensor(uninitializedShape: [batch, cout, ho, wo], on: device)
        device.backend.conv2dForward(self, weight: weight, bias: bias, geo, into: out)
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias?.tapeEntry)
        // dW reads the input, dx the weights.
        let input = detached(), weightValues = weight.detached()
        return out.recording(inputs) { g in
            let gx = ex.map { Tensor(zeros: $0.shape, on: device) }
            let gw = ew.map { Tensor(zeros: $0.shape, on: device) }
            let gb = eb.map { Tensor(zeros: $0.shape, on: device) }
            device.backend.conv2dBackward(input, weight: weightValues, geo, g, dx: gx, dw: gw, db: gb)
            if let gx { ex?.accumulate(gx, owned: true) }
            if let gw { ew?.accumulate(gw, owned: true) }
            if let gb { eb?.accumulate(gb, owned: true) }
        }
    }
}
