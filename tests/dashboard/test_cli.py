"""`archsearch dashboard` serves the study on 127.0.0.1 by default."""

import subprocess
import sys
import time
import urllib.request

from dashboard_helpers import free_port


def test_the_command_serves_on_loopback(study_url, stored):
    study, _ = stored
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "archsearch.cli", "dashboard", "--storage", study_url,
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/study/{study.id}", timeout=5) as response:
                    html = response.read().decode()
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "the dashboard did not answer in 60 s"
                time.sleep(0.2)
        assert study.name in html
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in output and "Traceback" not in output
