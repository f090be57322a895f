"""``python -m lora_edu.check_env``: the learner's short name for :mod:`lora_edu.tools.check_env`."""

from lora_edu.tools.check_env import main

if __name__ == "__main__":
    raise SystemExit(main())
