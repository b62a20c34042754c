#!/usr/bin/env python3
"""MOGNET in idiomatic PyTorch: the training-speed peer of `mognet-train bench-train`.

The same network and the same training step as mognet's trainer (the numeric specification in
the workspace README, "The model"): BTQ ternary weights with the clipped straight-through
estimator and the level-balancing regularizer, 3-bit QReLU on codes, CA pointwise weights as a
fixed buffer (rule 30, SplitMix64-seeded), CFLOG blocks, MUX residual blocks with the TGAP gate,
2x2 max pooling between stages, the head's 1x1 ternary conv + BN + global average pool; loss
cross-entropy + 0.01 * regularizer; SGD with Nesterov momentum 0.9 and weight decay 5e-4 on the
convolution weights.

It prints train images/s (median step time over `--steps` steps after `--warmup` untimed ones)
and eval images/s (median of `--steps` forward passes without gradients), on random inputs, as
`bench-train` does. Run `python3 mognet_peer.py --help` for the options.
"""

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    # stem width, stages (n, m, groups, blocks); blocks count the stage's CFLOGs.
    "mognet-s": (32, [(32, 32, 4, 2), (64, 64, 8, 2), (128, 128, 8, 2)]),
    "mognet-m": (64, [(64, 64, 8, 2), (128, 128, 8, 3), (256, 256, 16, 3)]),
    "mognet-l": (64, [(96, 96, 8, 2), (192, 192, 8, 3), (384, 384, 24, 3)]),
}

MASK64 = (1 << 64) - 1


def splitmix64(state):
    """One SplitMix64 step: (new state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def ca_weights(n, m, seed, rule=30):
    """The n x m +-1 matrix of the CA pointwise layer: SplitMix64-seeded ring of m cells, m warmup
    steps, then one row per step (cell 0 first)."""
    state, words = seed, []
    for _ in range((m + 63) // 64):
        state, out = splitmix64(state)
        words.append(out)
    cells = [(words[j // 64] >> (j % 64)) & 1 for j in range(m)]

    def step(s):
        return [(rule >> (4 * s[i - 1] + 2 * s[i] + s[(i + 1) % m])) & 1 for i in range(m)]

    for _ in range(m):
        cells = step(cells)
    rows = []
    for _ in range(n):
        cells = step(cells)
        rows.append([2.0 * b - 1.0 for b in cells])
    return torch.tensor(rows, dtype=torch.float32).reshape(n, m, 1, 1)


def straight_through(surrogate, forward):
    """Forward value `forward`, gradient of `surrogate`."""
    return surrogate + (forward - surrogate).detach()


class TernaryConv2d(nn.Conv2d):
    """Bias-free conv whose weights are BTQ ternary codes t in {-1, 0, +1}; `accumulate` returns
    conv(x, t) (exact integers on integer inputs) and alpha, the layer's scale."""

    def __init__(self, c_in, c_out, k=1, groups=1, delta=0.7, temperature=0.1, clip=1.0):
        super().__init__(c_in, c_out, k, padding=k // 2, groups=groups, bias=False)
        bound = 1.0 / (c_in // groups * k * k) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        self.delta, self.temperature, self.clip = delta, temperature, clip

    def ternarize(self):
        w = self.weight
        wd = w.detach()
        nonzero = (wd.abs() > self.delta * wd.abs().mean()).float()
        codes = wd.sign() * nonzero
        alpha = (wd.abs() * nonzero).sum() / nonzero.sum().clamp_min(1.0)
        inside = (wd.abs() <= self.clip).float()
        # Clipped STE scaled by 1/alpha, so that alpha * t has gradient 1 w.r.t. w inside the clip.
        surrogate = w * inside / alpha.clamp_min(1e-12)
        return straight_through(surrogate, codes), alpha

    def accumulate(self, x):
        codes, alpha = self.ternarize()
        return self._conv_forward(x, codes, None), alpha

    def regularizer(self):
        w = self.weight.flatten()
        mean_abs = w.detach().abs().mean()
        d = self.delta * mean_abs
        t = (self.temperature * mean_abs).clamp_min(1e-12)
        p_plus = torch.sigmoid((w - d) / t).mean()
        p_minus = torch.sigmoid((-w - d) / t).mean()
        p_zero = 1.0 - p_plus - p_minus
        third = 1.0 / 3.0
        return (p_plus - third) ** 2 + (p_minus - third) ** 2 + (p_zero - third) ** 2


class BnQRelu(nn.Module):
    """BatchNorm on scale * acc, then the 3-bit QReLU: codes clamp(floor(Q z + 0.5), 0, Q) with a
    straight-through gradient inside [0, 1]."""

    def __init__(self, channels, levels=7):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
        self.levels = levels

    def forward(self, acc, scale):
        z = self.bn(acc * scale)
        q = self.levels
        codes = torch.floor(z.detach() * q + 0.5).clamp(0.0, q)
        inside = ((z >= 0) & (z <= 1)).float()
        return straight_through(z * inside * q, codes)


class Cflog(nn.Module):
    """PW1 (1x1 ternary) -> grouped 3x3 ternary -> CA 1x1 (fixed buffer) -> BN -> QReLU."""

    def __init__(self, c_in, m, n, groups, ca_seed, levels=7):
        super().__init__()
        self.pw1 = TernaryConv2d(c_in, m)
        self.gconv = TernaryConv2d(m, m, 3, groups)
        self.register_buffer("pw2", ca_weights(n, m, ca_seed))
        self.out = BnQRelu(n, levels)
        self.levels = levels

    def forward(self, x):
        acc1, alpha1 = self.pw1.accumulate(x)
        acc2, alpha2 = self.gconv.accumulate(acc1)
        acc3 = F.conv2d(acc2, self.pw2)
        return self.out(acc3, alpha1 * alpha2 / self.levels)

    def regularizer(self):
        return self.pw1.regularizer() + self.gconv.regularizer()


class Mrb(nn.Module):
    """MUX residual block: y = s * floor((x + f) / 2) + (1 - s) * f, with the per-channel gate
    s = [sum_hw x >= ceil(tau Q H W)] and a sigmoid surrogate gradient."""

    def __init__(self, c, m, groups, ca_seed, levels=7, tau=0.5, temperature=0.1):
        super().__init__()
        self.cflog = Cflog(c, m, c, groups, ca_seed, levels)
        self.tau = nn.Parameter(torch.full((c,), tau))
        self.levels, self.temperature = levels, temperature

    def forward(self, x):
        f = self.cflog(x)
        hw = x.shape[2] * x.shape[3]
        full = self.levels * hw
        sums = x.sum(dim=(2, 3))
        threshold = torch.ceil(self.tau.detach() * full)
        step = (sums.detach() >= threshold).float()
        surrogate = torch.sigmoid((sums / full - self.tau) / self.temperature)
        s = straight_through(surrogate, step)[:, :, None, None]
        total = x + f
        residual = straight_through(total / 2, torch.floor(total.detach() / 2))
        return s * residual + (1 - s) * f


class Mognet(nn.Module):
    def __init__(self, preset, in_channels=1, num_classes=10, levels=7, head_gamma=8.0):
        super().__init__()
        stem_width, stages = PRESETS[preset]
        self.levels = levels
        self.stem = TernaryConv2d(in_channels, stem_width, 3)
        self.stem_out = BnQRelu(stem_width, levels)
        c, seed = stem_width, 1
        self.stages = nn.ModuleList()
        for n, m, groups, blocks in stages:
            layers = [Cflog(c, m, n, groups, seed, levels)]
            seed += 1
            for _ in range(1, blocks):
                layers.append(Mrb(n, m, groups, seed, levels))
                seed += 1
            self.stages.append(nn.Sequential(*layers))
            c = n
        self.head = TernaryConv2d(c, num_classes)
        self.head_bn = nn.BatchNorm2d(num_classes, eps=1e-5, momentum=0.1)
        nn.init.constant_(self.head_bn.weight, head_gamma)

    def forward(self, x):
        pixels = torch.floor(x * 255.0 + 0.5).detach()
        acc, alpha = self.stem.accumulate(pixels)
        x = self.stem_out(acc, alpha / 255.0)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = stage(x)
        acc, alpha = self.head.accumulate(x)
        z = self.head_bn(acc * (alpha / self.levels))
        return z.mean(dim=(2, 3))

    def regularizer(self):
        total = self.stem.regularizer() + self.head.regularizer()
        for module in self.modules():
            if isinstance(module, Cflog):
                total = total + module.regularizer()
        return total


def optimizer(model, lr=0.01):
    """SGD, Nesterov momentum 0.9; weight decay 5e-4 on convolution weights only (as mognet)."""
    decayed = [p for name, p in model.named_parameters() if name.endswith("weight") and p.dim() == 4]
    ids = {id(p) for p in decayed}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.SGD(
        [{"params": decayed, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
        lr=lr,
        momentum=0.9,
        nesterov=True,
    )


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(args):
    device = torch.device(args.device)
    torch.manual_seed(1)
    model = Mognet(args.preset, args.in_channels).to(device)
    opt = optimizer(model)
    x = torch.rand(args.batch, args.in_channels, 32, 32, device=device)
    y = torch.arange(args.batch, device=device) % 10
    forward = torch.compile(model) if args.compile else model

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(x), y) + 0.01 * model.regularizer()
        loss.backward()
        opt.step()
        return loss

    model.train()
    times = []
    for i in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        loss = train_step()
        loss.item()
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
        if not torch.isfinite(loss):
            raise SystemExit(f"loss is {loss.item()} at step {i}")
    step = statistics.median(times)
    train = args.batch / step

    model.eval()
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.steps):
            sync(device)
            t0 = time.perf_counter()
            forward(x).sum().item()
            sync(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    evaluation = args.batch / statistics.median(times)
    mode = "compile" if args.compile else "eager"
    print(
        f"torch {torch.__version__} {mode} {args.device} threads {torch.get_num_threads()} "
        f"{args.preset} batch {args.batch}: train {train:.1f} img/s "
        f"(median step {step:.3f} s), "
        f"eval {evaluation:.1f} img/s"
    )


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="mognet-s")
    p.add_argument("--batch", type=positive, default=128)
    p.add_argument("--threads", type=positive, default=2, help="intra-op threads (CPU)")
    p.add_argument("--in-channels", type=positive, default=1)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--steps", type=positive, default=5, help="timed steps")
    p.add_argument("--warmup", type=positive, default=2, help="untimed steps first")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    bench(args)


if __name__ == "__main__":
    main()
