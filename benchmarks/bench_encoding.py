"""Encoding benchmark: batched DoG + normalisation + latency coding vs one image at a time."""

from _common import BaselineNet, KheradpishehNet, parser, rate, report, setup, train_images


def run(args):
    setup(args)
    images = train_images()
    net = KheradpishehNet()
    ours_images = images[: args.images]
    base_images = images[: args.baseline_images]

    def ours():
        for chunk in ours_images.split(1024):
            net.encode(chunk)
        return ours_images.shape[0]

    def baseline():
        for image in base_images:
            BaselineNet.encode_image(image, net.encoder.kernels)
        return base_images.shape[0]

    same = all(
        bool((BaselineNet.encode_image(img, net.encoder.kernels) == net.encode(img[None])[0]).all())
        for img in base_images[:20]
    )
    return report("encoding", rate(ours, 2), rate(baseline), args, identical_to_baseline=same)


if __name__ == "__main__":
    run(parser(__doc__).parse_args())
