"""The listening page: CLI checks, the audio decoder, and the page in headless Chromium.

The browser tests serve two models (A/B): a point-source model made from the
smoke-trained workdir (every Gaussian moved to the scene's source, isotropic,
one decay exponent: its interaural level difference has a closed form) and
the smoke-trained model itself. They drive Debian's ``chromium`` through
``chromium-driver`` with Selenium and read what the page received from
``window.listen``.
"""

import io
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
DECAY = 1.0          # the point model's decay (exponent softplus(1) = 1.313)


# ----------------------------------------------------------------------------- CLI

def _cli(*args, timeout=60):
  return subprocess.run([sys.executable, "-m", "audiogs_jax.listen", *args], cwd=str(REPO),
                        capture_output=True, text=True, timeout=timeout)


def test_help_is_fast_and_bad_workdirs_exit_2(tmp_path):
  t0 = time.perf_counter()
  r = _cli("--help")
  assert r.returncode == 0 and "--workdir" in r.stdout and "127.0.0.1" in r.stdout
  assert time.perf_counter() - t0 < 10  # argparse before JAX
  r = _cli("--workdir", str(tmp_path / "nope"))
  assert r.returncode == 2
  assert r.stderr.strip() == f"error: --workdir {tmp_path / 'nope'}: no such directory"
  (tmp_path / "config.json").write_text("{}")
  r = _cli("--workdir", str(tmp_path))
  assert r.returncode == 2 and "no checkpoint" in r.stderr
  assert len(r.stderr.strip().splitlines()) == 1


def test_cli_serves_the_page_and_scene(trained_workdir, subprocess_env):
  """``python -m audiogs_jax.listen`` prints its URL and serves the page and scene."""
  import urllib.request
  proc = subprocess.Popen([sys.executable, "-m", "audiogs_jax.listen", "--workdir",
                           str(trained_workdir), "--port", "0"], cwd=str(REPO),
                          env=subprocess_env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    line = proc.stdout.readline()
    assert line.startswith("listening page: http://127.0.0.1:"), (line, proc.stderr.read())
    url = line.split()[2]
    page = urllib.request.urlopen(url, timeout=30).read().decode()
    assert "<canvas id=\"scene\"" in page and "/static/listen.js" in page
    js = urllib.request.urlopen(url + "static/worklet.js", timeout=30).read().decode()
    assert "registerProcessor('block-player'" in js
    scene = json.loads(urllib.request.urlopen(url + "api/scene", timeout=30).read())
    assert scene["sample_rate"] == 22050 and scene["block"] == 256
    assert scene["latency_ms"] == pytest.approx(1000 * 384 / 22050)
    assert len(scene["poses"]) > 0 and scene["room"] is not None
    assert len(scene["models"]) == 1 and len(scene["models"][0]["gaussians"]["x"]) > 100
  finally:
    proc.terminate()
    proc.wait(30)


def test_decode_audio(tmp_path):
  import soundfile as sf
  from audiogs_jax.listen import session as ls
  buf = io.BytesIO()
  t = np.arange(4410) / 44100.0
  sf.write(buf, np.stack([np.sin(2 * np.pi * 500 * t)] * 2, 1), 44100, format="WAV")
  x, notice = ls.decode_audio(buf.getvalue(), "a.wav", 22050)
  assert x.shape == (2205,) and "resampled from 44100 Hz" in notice and "mono" in notice
  with pytest.raises(ls.AudioError, match="b.txt: not an audio file"):
    ls.decode_audio(b"hello, not audio", "b.txt", 22050)
  with pytest.raises(ls.AudioError, match="empty"):
    ls.decode_audio(b"", "c.wav", 22050)
  buf = io.BytesIO()
  sf.write(buf, np.array([0.0, np.nan, 0.1]), 22050, format="WAV", subtype="FLOAT")
  with pytest.raises(ls.AudioError, match="NaN"):
    ls.decode_audio(buf.getvalue(), "d.wav", 22050)


# ----------------------------------------------------------------------------- server

@pytest.fixture(scope="module")
def point_workdir(trained_workdir, tmp_path_factory):
  """The smoke workdir with every Gaussian at the scene's source, at the
  listeners' height: isotropic, equal gain for both ears, decay DECAY."""
  import jax.numpy as jnp
  from audiogs_jax import checkpoint as ckpt_lib, config as config_lib, sh, workdir
  out = tmp_path_factory.mktemp("point") / "workdir"
  out.mkdir()
  shutil.copy(trained_workdir / "config.json", out / "config.json")
  config = config_lib.load_saved_config(trained_workdir / "config.json")
  ck = ckpt_lib.Checkpointer(trained_workdir, async_save=False)
  meta = ck.restore_meta()
  state, meta = ck.restore(workdir.state_template(config, meta))
  ck.close()
  p = state.params
  src = np.asarray(meta["source_position"], np.float32)
  src[2] = float(meta["scene_info"]["center"][2])
  xyz = jnp.broadcast_to(jnp.asarray(src)[:, None, None], p.xyz.shape)
  coeffs = jnp.zeros_like(p.sh).at[:, 0].set(1.0 / sh.C0)
  params = p.replace(xyz=xyz, sh=coeffs, decay=jnp.full_like(p.decay, DECAY),
                     phase=None if p.phase is None else jnp.zeros_like(p.phase))
  ck = ckpt_lib.Checkpointer(out, async_save=False)
  ck.save(int(state.step), state.replace(params=params), meta)
  ck.wait()
  ck.close()
  return out


WORKLET_DELAY = 1.5   # s: the worklet module arrives after the first blocks


def _late_worklet(app):
  """The app, with ``/static/worklet.js`` served ``WORKLET_DELAY`` seconds late.

  The socket opens and the server renders the first credits' worth of blocks
  while the page is still loading the AudioWorklet module; the page must keep
  those blocks for the worklet (CI once failed when it dropped them: 4 blocks
  received, none played, the server waiting for credits). The delay makes
  every browser test take that path, not only an unlucky loaded run.
  """
  import asyncio

  async def wrapped(scope, receive, send):
    if scope["type"] == "http" and scope["path"].endswith("/worklet.js"):
      await asyncio.sleep(WORKLET_DELAY)
    await app(scope, receive, send)
  return wrapped


@pytest.fixture(scope="module")
def server(point_workdir, trained_workdir):
  """The app on 127.0.0.1:<free port> in a thread: model A = point, B = smoke."""
  import uvicorn
  from audiogs_jax.listen import app as listen_app, command
  state = listen_app.load([str(point_workdir), str(trained_workdir)])
  sock = command.bind("127.0.0.1", 0)
  srv = uvicorn.Server(uvicorn.Config(_late_worklet(listen_app.make_app(state)),
                                      log_level="warning",
                                      ws="wsproto", lifespan="off"))
  th = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
  th.start()
  for _ in range(200):
    if srv.started:
      break
    time.sleep(0.05)
  yield f"http://127.0.0.1:{sock.getsockname()[1]}/", state
  srv.should_exit = True
  th.join(10)


@pytest.fixture(scope="module")
def page(server):
  if not (CHROMIUM and DRIVER):
    why = ("no Chromium here: install Debian's chromium and chromium-driver "
           "(apt-get install -y chromium chromium-driver) to run the browser tests")
    if os.environ.get("AUDIOGS_REQUIRE_BROWSER"):  # .ci/run installs them: never skip there
      pytest.fail(why)
    pytest.skip(why)
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  opts = webdriver.ChromeOptions()
  opts.binary_location = CHROMIUM
  for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required", "--window-size=1100,900",
            # A fake output stream, pulled by a timer at the real-time rate: the
            # AudioWorklet runs the same whether or not the machine has a sound
            # device. (The stalls once blamed on the sound device were the page
            # dropping blocks that came before its worklet: see _late_worklet.)
            "--disable-audio-output"):
    opts.add_argument(a)
  # The browser gets the environment without CI=true: the page should not behave
  # differently under CI, and Chromium's headless mode reads it.
  env = {k: v for k, v in os.environ.items() if k != "CI"}
  driver = webdriver.Chrome(options=opts, service=Service(DRIVER, env=env))
  driver.get(server[0])
  yield driver
  driver.quit()


def _js(driver, expr):
  return driver.execute_script(f"return {expr};")


def _wait(driver, expr, timeout=30.0):
  t0 = time.time()
  while time.time() - t0 < timeout:
    v = _js(driver, expr)
    if v:
      return v
    time.sleep(0.1)
  raise AssertionError(f"timed out waiting for {expr}; stats: "
                       f"{_js(driver, 'JSON.stringify({...window.listen.stats, blocks: 0})')}")


def _levels_after(driver, pose_seq, code, skip=3, count=40):
  """Mean-square levels (L, R) of ``count`` blocks rendered at ``pose_seq``."""
  sel = (f"window.listen.stats.blocks.filter(b => b.poseSeq === {pose_seq} && "
         f"b.code === {code})")
  _wait(driver, f"{sel}.length >= {skip + count}")
  blocks = _js(driver, f"{sel}.slice({skip}, {skip + count})")
  return (float(np.mean([b["msL"] for b in blocks])),
          float(np.mean([b["msR"] for b in blocks])))


def test_page_loads_and_the_audio_graph_runs(page, server):
  _wait(page, "window.listen.stats.played > 20")
  assert _js(page, "window.listen.stats.audioState") == "running"
  assert _js(page, "document.querySelectorAll('#ab input').length") == 3   # A, B, recorded
  # The scene is drawn: many non-white pixels (room, Gaussians, poses, source).
  inked = _js(page, """(() => { const c = document.getElementById('scene');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200) n++; return n; })()""")
  assert inked > 2000
  _wait(page, "window.listen.stats.latencyMs !== null")
  lat, render = _js(page, "[window.listen.stats.latencyMs, window.listen.stats.renderMs]")
  assert 0 < lat < 5000 and 0 < render < 1000
  assert "ms" in page.find_element("id", "render-ms").text
  assert _js(page, "window.listen.stats.errors.length") == 0


def _drag_listener_to(driver, x, y):
  """Drag the listener's head on the canvas to world (x, y), like a user."""
  from selenium.webdriver.common.action_chains import ActionChains
  canvas = driver.find_element("id", "scene")
  w, h = _js(driver, "[document.getElementById('scene').width, "
                     "document.getElementById('scene').height]")
  src = _js(driver, "window.listen.toScreen(window.listen.pose.x, window.listen.pose.y)")
  dst = _js(driver, f"window.listen.toScreen({x}, {y})")
  off = lambda p: (int(round(p[0] - w / 2)), int(round(p[1] - h / 2)))
  (ActionChains(driver).move_to_element_with_offset(canvas, *off(src)).click_and_hold()
   .move_to_element_with_offset(canvas, *off(dst)).release().perform())
  return _wait(driver, "window.listen.poseSeq")


def _expected_ild_db(state, pose_xyyaw):
  """20 log10 of the left/right gain ratio of the point model: (r_R / r_L)^expo."""
  m = state.models[0]
  x, y, yaw = pose_xyyaw
  pose = state.view.pose(x, y, yaw).astype(np.float64)
  src = np.asarray(m.meta["source_position"], np.float64)
  src[state.view.up_axis] = state.view.height
  mpu = float(np.exp(np.asarray(m.params.log_scale))) if m.params.log_scale is not None \
      else m.config.render.metres_per_unit
  p = pose[:3, :3].T @ (src - pose[:3, 3]) * mpu
  a = m.config.render.head_radius
  r_l, r_r = np.linalg.norm(p - [-a, 0, 0]), np.linalg.norm(p - [a, 0, 0])
  return 20.0 * math.log1p(math.exp(DECAY)) * math.log10(r_r / r_l)


def test_listener_left_of_the_source_hears_it_in_the_left_ear(page, server):
  state = server[1]
  sx, sy = state.scene_json["source"]
  yaw = _js(page, "window.listen.pose.yaw")
  left = np.array([-math.sin(yaw), math.cos(yaw)])          # the head's left, top view
  for side, sign in (("left", 1.0), ("right", -1.0)):
    # Stand 0.25 units (about 0.4 m) so that the source is on this side.
    tx, ty = np.array([sx, sy]) - sign * 0.25 * left
    _drag_listener_to(page, tx, ty)
    time.sleep(0.3)  # the last pose message goes out on the next animation frame
    seq = _js(page, "window.listen.poseSeq")
    ml, mr = _levels_after(page, seq, code=0)
    ild = 10 * math.log10(ml / mr)
    pose = _js(page, "[window.listen.pose.x, window.listen.pose.y, window.listen.pose.yaw]")
    assert pose[:2] == pytest.approx([tx, ty], abs=0.02)   # the drag put the head there
    want = _expected_ild_db(state, pose)
    assert sign * ild > 3.0, (side, ild)
    assert ild == pytest.approx(want, abs=0.5), (side, ild, want)


def test_ab_switches_between_models_and_the_recording(page, server):
  for k, code in ((1, 1), (2, 2), (0, 0)):
    page.find_element("id", f"ab-{k}").click()
    seq = _js(page, "window.listen.stats.received")
    _wait(page, f"window.listen.stats.blocks.filter(b => b.seq > {seq} && "
                f"b.code === {code}).length > 10")
  levels = _js(page, "window.listen.stats.blocks.filter(b => b.code === 2).map(b => b.msL)")
  assert max(levels) > 1e-6   # the recorded clip is not silence


def _drop(driver, path):
  """Drop a local file on the page (a DataTransfer built from a file input)."""
  inp = driver.execute_script("""const i = document.createElement('input');
      i.type = 'file'; i.id = 'test-drop'; document.body.append(i); return i;""")
  inp.send_keys(str(path))
  driver.execute_script("""const i = document.getElementById('test-drop');
      const dt = new DataTransfer(); dt.items.add(i.files[0]); i.remove();
      document.getElementById('stage').dispatchEvent(
          new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));""")


def test_dropped_wav_is_played_resampled(page, server, tmp_path):
  import soundfile as sf
  sr_page = server[1].sample_rate
  t = np.arange(3 * 44100) / 44100.0
  sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 1000.0 * t), 44100)
  _drop(page, tmp_path / "tone.wav")
  sid = _wait(page, "window.listen.stats.sourceName === 'tone.wav' && "
                    "window.listen.stats.sourceId")
  assert any("resampled from 44100 Hz" in n for n in _js(page, "window.listen.stats.notices"))
  _wait(page, f"window.listen.stats.blocks.filter(b => b.sourceId === {sid}).length > 40")
  x = np.asarray(_js(page, "window.listen.lastSamples(4096)")["l"])
  spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
  assert np.argmax(spec) * sr_page / x.size == pytest.approx(1000.0, abs=15.0)


def test_bad_input_gets_messages_and_the_stream_goes_on(page, server, tmp_path):
  (tmp_path / "notes.txt").write_text("not audio at all")
  _drop(page, tmp_path / "notes.txt")
  _wait(page, "window.listen.stats.errors.some(e => e.includes('notes.txt: not an audio'))")
  for msg in ("'{not json'", "JSON.stringify({type: 'pose', seq: 999, x: 'left', y: 0, yaw: 0})",
              "JSON.stringify({type: 'pose', x: 0, y: 0})", "JSON.stringify({type: 'dance'})",
              "'{\"type\": \"pose\", \"seq\": 1e999, \"x\": 0, \"y\": 0, \"yaw\": 0}'",
              "JSON.stringify({type: 'output', output: 'model', model: 1.5})"):
    page.execute_script(f"window.listen.ws.send({msg});")
  _wait(page, "window.listen.stats.errors.length >= 7")
  errors = " | ".join(_js(page, "window.listen.stats.errors"))
  for text in ("not JSON", "x must be a number", "lacks yaw", "unknown message type",
               "seq must be an integer", "output message"):
    assert text in errors
  # A second client that disconnects mid-stream does not stop this one.
  page.execute_script("""const w = new WebSocket(window.listen.ws.url);
      w.binaryType = 'arraybuffer'; window.otherBlocks = 0;
      w.onopen = () => w.send(JSON.stringify({type: 'start', credits: 64}));
      w.onmessage = (e) => { if (typeof e.data !== 'string' && ++window.otherBlocks === 5)
                               w.close(); };""")
  _wait(page, "window.otherBlocks >= 5")
  n = _js(page, "window.listen.stats.received")
  _wait(page, f"window.listen.stats.received > {n + 40}")
  assert _js(page, "window.listen.ws.readyState") == 1
  assert _js(page, "window.listen.stats.blocks.slice(-40).every(b => isFinite(b.msL))")
