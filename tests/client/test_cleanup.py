"""A client home stays small: work folders go after a success, failed ones after their
bound, old program logs too, and the cache stays within its limit."""

from __future__ import annotations

import os
import time

from quartermaster.client.cache import ContentCache
from quartermaster.client.cleanup import DAY, sweep
from quartermaster.client.home import ClientHome
from quartermaster.core.component_log import ComponentLog

from .conftest import ClientWorld, deployment_entry
from .servers import StoreServer, write_store


def test_a_successful_run_leaves_no_work_folder(world: ClientWorld, dp: StoreServer) -> None:
    world.deploy(dp, {"setup.sh": b"test -f setup.sh\n"}, command="sh setup.sh")
    world.run()
    assert world.site.ids()[-1] == 10008
    assert not (world.home.work / "QM120000").exists()
    assert list(world.home.work.iterdir()) == []
    assert "work folder" in world.log("execmgr") and "deleted after success" in world.log("execmgr")


def test_a_failed_run_keeps_its_work_folder_until_its_bound(
    world: ClientWorld, dp: StoreServer
) -> None:
    world.deploy(dp, {"setup.sh": b"echo broken; exit 2\n"}, command="sh setup.sh")
    world.run()
    assert world.site.ids()[-1] == 10006
    assert (
        (world.home.work / "QM120000") / "setup.sh"
    ).is_file()  # kept for the administrator to look at
    log = ComponentLog(world.home.logs, "execmgr")
    now = time.time()
    assert sweep(world.home.work, world.home.program_logs, log, now=now + 6 * DAY) == []
    assert (world.home.work / "QM120000").exists()
    program_log = next(world.home.program_logs.iterdir())
    removed = sweep(world.home.work, world.home.program_logs, log, now=now + 8 * DAY)
    assert removed == [(world.home.work / "QM120000")]
    assert (
        not (world.home.work / "QM120000").exists() and program_log.exists()
    )  # logs are kept 30 days
    assert sweep(world.home.work, world.home.program_logs, log, now=now + 31 * DAY) == [program_log]


def test_an_agent_run_sweeps_failed_work_older_than_the_configured_days(
    world: ClientWorld, dp: StoreServer
) -> None:
    stale = world.home.work / "QM129999"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "f").write_text("x")
    os.chmod(stale / "sub", 0o500)  # a program left a read-only folder behind
    old = time.time() - 3 * DAY
    os.utime(stale, (old, old))
    config = world.home.load_config()
    config.failed_work_keep_days = 2
    world.home.save_config(config)
    world.deploy(dp, {"setup.sh": b"exit 0\n"}, command="sh setup.sh")
    world.run()
    assert not stale.exists()


def test_the_cache_stays_within_its_limit_across_deployments(
    world: ClientWorld, dp: StoreServer
) -> None:
    config = world.home.load_config()
    config.cache_limit_bytes = 150_000
    world.home.save_config(config)
    home = ClientHome(world.home.root)
    for n in range(3):  # 100 kB each: two never fit together
        package = world.package({f"data{n}.bin": bytes([n]) * 100_000}, version=n + 1)
        write_store(dp.root, package.blobs)
        world.serve_from(package, ("dp1", dp.url))
        world.publish(deployment_entry(package, deployment_id=f"QM12000{n}"))
        world.run()
        assert world.site.ids()[-1] == 10008
        used = ContentCache(home.cache, config.cache_limit_bytes).used_bytes()
        assert used <= 150_000
    assert ContentCache(home.cache, 0).entries()[0].size == 100_000  # the newest stayed
