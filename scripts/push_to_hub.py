#!/usr/bin/env python
"""Upload an mlic_hf checkpoint directory to the Hugging Face Hub with a generated model card.

    python scripts/push_to_hub.py --checkpoint outputs/demo --repo_id you/mlic-demo
    python scripts/push_to_hub.py --checkpoint outputs/demo --repo_id you/mlic-demo --private
    python scripts/push_to_hub.py --checkpoint outputs/demo --repo_id you/mlic-demo --dry_run   # card + file list

The card (README.md) and its plots (plots/*.png) are (re)written first unless --no_card is given. Only the
safetensors weights, config.json, preprocessor_config.json, README.md, plots/ and mlic_run.json are uploaded:
trainer checkpoints (checkpoint-*/), optimizer / scheduler / RNG states and pickled weights never are.
Exit status: 0 on success, 2 on an error (the message is printed to stderr).
"""

import argparse
import logging
import sys

from mlic_hf.cli import script_entry


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (written by scripts/train.py)")
    parser.add_argument("--repo_id", required=True, help="Hub repository, e.g. you/mlic-demo")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in user's)")
    parser.add_argument("--no_card", action="store_true", help="keep the existing README.md and plots")
    parser.add_argument("--dry_run", action="store_true", help="write the card and list the files; upload nothing")
    return parser.parse_args(argv)


@script_entry(RuntimeError, ImportError)
def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)

    from mlic_hf.hub import files_to_upload, push_to_hub, write_model_card

    if args.dry_run:
        if not args.no_card:
            print(f"wrote {write_model_card(args.checkpoint, repo_id=args.repo_id)}")
        files = files_to_upload(args.checkpoint)
        print(f"dry run: would upload {len(files)} files from {args.checkpoint} to {args.repo_id}:")
        for name in files:
            print(f"  {name}")
        return 0
    url = push_to_hub(
        args.checkpoint, args.repo_id, token=args.token, private=args.private, create_card=not args.no_card
    )
    print(f"uploaded to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
