"""Screenshot of the listening page (headless Chromium), e.g. for docs/listen.png.

    python scripts/listen_screenshot.py --workdir runs/default --out docs/listen.png

Starts ``python -m audiogs_jax.listen`` on a free port, opens the page in
Debian's ``chromium`` through ``chromedriver`` (Selenium), lets it stream for a
few seconds, saves a palette PNG, and stops the server.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", action="append", required=True)
  p.add_argument("--out", default=str(ROOT / "docs" / "listen.png"))
  p.add_argument("--seconds", type=float, default=4.0, help="stream this long first")
  args = p.parse_args(argv)
  cmd = [sys.executable, "-m", "audiogs_jax.listen", "--port", "0"]
  for w in args.workdir:
    cmd += ["--workdir", w]
  srv = subprocess.Popen(cmd, cwd=str(ROOT), stdout=subprocess.PIPE, text=True)
  try:
    line = srv.stdout.readline()
    if "http://" not in line:
      print(f"error: the server did not start ({line.strip()!r})", file=sys.stderr)
      return 2
    url = line.split()[2]
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--autoplay-policy=no-user-gesture-required", "--window-size=1080,700"):
      opts.add_argument(a)
    driver = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
    try:
      driver.get(url)
      time.sleep(args.seconds)
      raw = pathlib.Path(args.out).with_suffix(".raw.png")
      driver.save_screenshot(str(raw))
    finally:
      driver.quit()
    img = Image.open(raw).convert("RGB").quantize(colors=128)
    img.save(args.out, optimize=True)
    raw.unlink()
    print(f"wrote {args.out} ({pathlib.Path(args.out).stat().st_size // 1024} KiB)")
  finally:
    srv.terminate()
    srv.wait(10)
  return 0


if __name__ == "__main__":
  sys.exit(main())
