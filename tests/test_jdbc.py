"""pgJDBC (Maven Central, Java 17) through the PostgreSQL front door: batches, prepared
statements past prepareThreshold across pooled transactions, errors and rollback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_frontend import APP_PASSWORD, APP_USER, FrontDoor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("javac") is None or shutil.which("java") is None,
                                reason="no JDK (scripts/setup.sh installs one for the tests)")


@pytest.fixture(scope="module")
def jdbc_classes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    jar = Path(subprocess.run([str(ROOT / "scripts" / "fetch-pgjdbc.sh")], capture_output=True,
                              text=True, check=True).stdout.strip())
    out = tmp_path_factory.mktemp("jdbc")
    subprocess.run(["javac", "-cp", str(jar), "-d", str(out),
                    str(ROOT / "tests" / "jdbc" / "FrontDoorJdbc.java")], check=True)
    return jar, out


def test_pgjdbc_through_the_front_door(pg, tmp_path: Path, jdbc_classes) -> None:
    jar, classes = jdbc_classes
    pg.admin_sql("DROP TABLE IF EXISTS fe_jdbc; CREATE TABLE fe_jdbc (id int PRIMARY KEY,"
                 f" v text); GRANT ALL ON fe_jdbc TO {pg.user}")
    f = FrontDoor(pg, tmp_path)
    try:
        url = (f"jdbc:postgresql://127.0.0.1:{f.port}/{pg.dbname}?sslmode=verify-full"
               f"&sslrootcert={pg.ca_file}")
        r = subprocess.run(["java", "-cp", f"{jar}:{classes}", "FrontDoorJdbc", url, APP_USER,
                            APP_PASSWORD], capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "done 780" in r.stdout
        assert "ok named statement ran on 2 backends" in r.stdout
    finally:
        f.stop()
    assert pg.admin_sql("SELECT count(*), min(v), max(id) FROM fe_jdbc") == [
        ["500", "row 0", "499"]]
