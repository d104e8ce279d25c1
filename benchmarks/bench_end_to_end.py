"""End-to-end benchmark: encode, one epoch of each layer, features, on the same images."""

from _common import BaselineNet, KheradpishehNet, parser, rate, report, setup, train_images

from stdp_plugins.training import LayerwiseTrainer, TrainConfig


def run(args):
    setup(args)
    images = train_images()
    ours_images = images[: args.images]
    base_images = images[: args.baseline_images]

    def ours():
        net = KheradpishehNet(seed=0)
        config = TrainConfig(batch_size=args.batch_size, epochs=(1, 1), stop_at_convergence=False,
                             progress=False, checkpoint_every=0)
        LayerwiseTrainer(net, ours_images, config).train()
        for chunk in ours_images.split(512):
            net.features(net.encode(chunk))
        return ours_images.shape[0]

    def baseline():
        net = KheradpishehNet(seed=0)
        base = BaselineNet(net.conv1.weight, net.conv2.weight)
        times = [BaselineNet.encode_image(img, net.encoder.kernels) for img in base_images]
        for seen, x in enumerate(times):
            base.train_layer1_image(x, *net.learning_rates(1, seen))
        for x in times:
            base.train_layer2_image(x)
        for x in times:
            base.features_image(x)
        return base_images.shape[0]

    return report("end_to_end", rate(ours), rate(baseline), args)


if __name__ == "__main__":
    run(parser(__doc__).parse_args())
