"""Layer-1 training benchmark: event-driven batched STDP vs dense one-image-at-a-time."""

from _common import BaselineNet, KheradpishehNet, TrainConfig, parser, rate, report, setup, train_images

from stdp_plugins.backends import kernel_threads


def train_ours(net, inputs, batch_size):
    """The trainer's loop: train_step on every batch, with the threads given to the kernel."""
    seen = 0
    with kernel_threads():
        for x in inputs.split(batch_size):
            net.train_step(1, x, seen, TrainConfig.reduction)
            seen += x.shape[0]
    return seen


def train_baseline(base, net, inputs):
    for seen, x in enumerate(inputs):
        base.train_layer1_image(x, *net.learning_rates(1, seen))
    return inputs.shape[0]


def run(args):
    setup(args)
    images = train_images()
    encoder = KheradpishehNet()
    inputs = encoder.encode(images[: args.images])
    ours = rate(lambda: train_ours(KheradpishehNet(seed=0), inputs, args.batch_size))
    fresh = KheradpishehNet(seed=0)
    base_inputs = inputs[: args.baseline_images]
    baseline = rate(lambda: train_baseline(BaselineNet(fresh.conv1.weight, fresh.conv2.weight), fresh, base_inputs))
    # same algorithm: batch size 1 against the baseline on the same images
    check = KheradpishehNet(seed=0)
    train_ours(check, inputs[:40], 1)
    base = BaselineNet(fresh.conv1.weight, fresh.conv2.weight)
    train_baseline(base, fresh, inputs[:40])
    diff = float((check.conv1.weight - base.w1).abs().max())
    return report("layer1_training", ours, baseline, args, batch1_max_abs_weight_diff_vs_baseline=diff)


if __name__ == "__main__":
    run(parser(__doc__).parse_args())
