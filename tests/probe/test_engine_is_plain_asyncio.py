import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_engine_imports_nothing_from_django():
    code = (
        "import sys, pkgutil, importlib, relaytests.probe as p\n"
        "for m in pkgutil.iter_modules(p.__path__): importlib.import_module('relaytests.probe.' + m.name)\n"
        "print(sorted(n for n in sys.modules if n == 'django' or n.startswith('django.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
