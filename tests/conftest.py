"""Make `import pnlib` work under a plain `pytest` (the README's test command) from a fresh clone."""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
