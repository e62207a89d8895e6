#!/usr/bin/env python
"""Upload a checkpoint directory to the Hugging Face Hub with a generated model card.

    python scripts/push_to_hub.py --checkpoint outputs/demo --repo_id you/mlic-demo
    python scripts/push_to_hub.py --checkpoint outputs/demo --repo_id you/mlic-demo --dry_run   # card + file list

Only safetensors weights, config.json, preprocessor_config.json, README.md, plots/ and mlic_run.json are uploaded.
"""

import argparse
import sys

from mlic_hf.hub import files_to_upload, push_to_hub, write_model_card


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (from scripts/train.py)")
    parser.add_argument("--repo_id", required=True, help="Hub repository, e.g. you/mlic-demo")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    parser.add_argument("--no_card", action="store_true", help="keep the existing README.md")
    parser.add_argument("--dry_run", action="store_true", help="write the card and list the files; upload nothing")
    args = parser.parse_args(argv)
    try:
        if args.dry_run:
            if not args.no_card:
                print(f"wrote {write_model_card(args.checkpoint, repo_id=args.repo_id)}")
            print("would upload:")
            for name in files_to_upload(args.checkpoint):
                print(f"  {name}")
            return 0
        url = push_to_hub(args.checkpoint, args.repo_id, token=args.token, private=args.private,
                          create_card=not args.no_card)
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"uploaded to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
