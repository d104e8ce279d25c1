"""Run every phase benchmark in one process and write their JSON to a file."""

import json

import bench_encoding
import bench_end_to_end
import bench_features
import bench_layer1
import bench_layer2
from _common import parser


def main():
    p = parser(__doc__)
    p.add_argument("--output", default="benchmark-results.json")
    args = p.parse_args()
    results = [module.run(args) for module in (bench_encoding, bench_layer1, bench_layer2, bench_features,
                                               bench_end_to_end)]
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
