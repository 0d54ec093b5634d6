"""Deployments of applications on a client: detection decides, before and after the program.

Packages come from a real DP on 127.0.0.1 and programs really run; the site's client API is
the in-memory stand-in of tests/client/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.client.app_world import Apps, lines
from tests.client.conftest import ClientWorld
from tests.client.servers import StoreServer


def _apps(world: ClientWorld, dp: StoreServer) -> Apps:
    return Apps(world, dp)


def test_already_installed_is_compliant_nothing_downloaded_nothing_run(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    marker, runs = tmp_path / "installed.txt", tmp_path / "runs.txt"
    marker.write_text("there\n")
    apps = _apps(world, dp)
    app = apps.app(f"echo run >> {runs}; touch {marker}", [f"file:{marker}"])
    apps.publish(apps.deployment(app))
    world.run()
    assert not runs.exists(), "the install program ran although the application was there"
    assert dp.blob_requests() == []
    assert not [c for c in world.site.calls if c[0] in ("manifest", "locations")]
    assert not world.site.messages(10035) and not world.site.messages(10005)
    (compliant,) = world.site.messages(1001)
    assert compliant["properties"]["detected"] is True
    assert compliant["properties"]["evidence"] == [
        {"rule": f"file:{marker}", "result": "present", "saw": "exists"}
    ]
    assert world.state().result == "compliant"


def test_exit_zero_without_the_software_is_installed_but_not_detected(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    marker = tmp_path / "never-made.txt"
    apps = _apps(world, dp)
    app = apps.app("exit 0", [f"file:{marker}"])
    apps.publish(apps.deployment(app))
    world.run()
    (failure,) = world.site.messages(5100)
    assert failure["insertion_strings"][4] == "0"  # the exit code said success
    assert "0x87D00324" not in failure["insertion_strings"]  # the catalog text carries it
    assert failure["properties"]["detected"] is False
    assert failure["properties"]["evidence"][0]["saw"] == "does not exist"
    assert not world.site.messages(1000) and not world.site.messages(10008)
    assert world.state().result == "failed"
    assert world.state().reason == "installed but not detected"


def test_drift_is_reported_and_repaired_at_the_next_evaluation(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    marker, runs = tmp_path / "tool", tmp_path / "runs.txt"
    apps = _apps(world, dp)
    app = apps.app(f"echo run >> {runs}; cp payload.txt {marker}", [f"file:{marker}"])
    apps.publish(apps.deployment(app))
    world.run()
    assert world.site.messages(1000) and marker.exists()
    world.run()  # still there: nothing runs, and the report is not repeated within a cycle
    assert lines(runs) == ["run"] and not world.site.messages(1100)
    marker.unlink()  # behind the agent's back
    world.clock.advance(60)
    world.run()
    (drift,) = world.site.messages(1100)
    assert drift["properties"]["evidence"][0]["result"] == "absent"
    assert marker.exists() and lines(runs) == ["run", "run"]
    assert len(world.site.messages(1000)) == 2


def test_dependencies_are_installed_first_in_order(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    order = tmp_path / "order.txt"
    apps = _apps(world, dp)
    first = apps.app(f"echo first >> {order}", [f"script:grep -x first {order}"])
    second = apps.app(f"echo second >> {order}", [f"script:grep -x second {order}"])
    main = apps.app(
        f"echo main >> {order}", [f"script:grep -x main {order}"], depends=(first, second)
    )
    apps.publish(apps.deployment(main))
    world.run()
    assert lines(order) == ["first", "second", "main"]
    assert world.site.messages(1000)[0]["properties"]["detected"] is True


def test_a_failing_dependency_fails_the_application_and_its_install_never_runs(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    order = tmp_path / "order.txt"
    apps = _apps(world, dp)
    broken = apps.app(f"echo broken >> {order}; exit 3", [f"file:{tmp_path / 'nothing'}"])
    main = apps.app(f"echo main >> {order}", [f"file:{tmp_path / 'main'}"], depends=(broken,))
    apps.publish(apps.deployment(main))
    world.run()
    assert lines(order) == ["broken"]
    (failure,) = world.site.messages(5004)
    assert failure["insertion_strings"][4] == broken
    assert "exited 3" in failure["insertion_strings"][5]
    assert world.state().result == "failed"


def test_supersedence_uninstalls_the_old_application_first_only_where_it_is(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    old_marker, new_marker, order = tmp_path / "old", tmp_path / "new", tmp_path / "order"
    old_marker.write_text("old\n")
    apps = _apps(world, dp)
    old = apps.app(
        f"touch {old_marker}",
        [f"file:{old_marker}"],
        uninstall=f"echo remove-old >> {order}; rm {old_marker}",
    )
    new = apps.app(
        f"echo install-new >> {order}; touch {new_marker}",
        [f"file:{new_marker}"],
        supersedes=((old, "uninstall"),),
    )
    apps.publish(apps.deployment(new))
    world.run()
    assert lines(order) == ["remove-old", "install-new"]
    assert not old_marker.exists() and new_marker.exists()
    # A computer without the old application gets only the new one.
    new_marker.unlink()
    order.unlink()
    apps.publish(apps.deployment(new, deployment_id="QM120001"))
    world.run()
    assert lines(order) == ["install-new"]


def test_uninstall_runs_only_when_detected_and_must_leave_it_absent(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    marker, runs = tmp_path / "tool", tmp_path / "runs"
    apps = _apps(world, dp)
    app = apps.app("exit 0", [f"file:{marker}"], uninstall=f"echo run >> {runs}")
    apps.publish(apps.deployment(app, purpose="uninstall"))
    world.run()
    assert not runs.exists()
    assert world.site.messages(1001)[0]["properties"]["detected"] is False
    marker.write_text("x")  # present now, and the uninstall program does not remove it
    apps.publish(apps.deployment(app, deployment_id="QM120001", purpose="uninstall"))
    world.run()
    assert lines(runs) == ["run"]
    (failure,) = world.site.messages(5101)
    assert failure["properties"]["detected"] is True


def test_a_package_laid_out_as_is_is_detected_by_its_manifest(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    target = tmp_path / "opt-tool"
    files = {"bin/tool": b"#!/bin/sh\necho tool\n", "share/readme.txt": b"read me\n"}
    apps = _apps(world, dp)
    app = apps.app(
        f"mkdir -p {target} && cp -r bin share {target}/", [f"manifest:{target}"], files=files
    )
    apps.publish(apps.deployment(app))
    world.run()
    assert world.site.messages(1000), world.site.ids()
    (target / "share/readme.txt").write_text("edited\n")
    world.clock.advance(60)
    world.run()  # the edited file is drift: the install runs again and restores it
    assert world.site.messages(1100)[0]["properties"]["evidence"][0]["saw"] == (
        "share/readme.txt differs from the package"
    )
    assert (target / "share/readme.txt").read_bytes() == b"read me\n"


def test_a_required_old_deployment_does_not_put_back_what_its_successor_replaced(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    old_marker, new_marker, runs = tmp_path / "old", tmp_path / "new", tmp_path / "runs"
    apps = _apps(world, dp)
    old = apps.app(
        f"echo old >> {runs}; touch {old_marker}",
        [f"file:{old_marker}"],
        uninstall=f"rm {old_marker}",
    )
    new = apps.app(
        f"echo new >> {runs}; touch {new_marker}",
        [f"file:{new_marker}"],
        supersedes=((old, "uninstall"),),
    )
    apps.publish(apps.deployment(old))
    world.run()
    assert lines(runs) == ["old"] and old_marker.exists()
    # The upgrade is deployed beside the old deployment, which nobody retired.
    apps.publish(apps.deployment(old), apps.deployment(new, deployment_id="QM120001"))
    world.run()
    world.clock.advance(60)
    world.run()
    assert lines(runs) == ["old", "new"], "the old deployment reinstalled what was replaced"
    assert not old_marker.exists() and new_marker.exists()
    # Reported when it changes: present before the upgrade ran, absent after.
    superseded = world.site.messages(1102)
    assert [m["properties"]["detected"] for m in superseded] == [True, False]
    assert {m["deployment_id"] for m in superseded} == {"QM120000"}
    assert superseded[0]["insertion_strings"][4] == new
    assert not world.site.messages(1100)


def test_a_retryable_exit_code_of_an_install_is_retried_by_the_program_rule(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    marker, tries = tmp_path / "tool", tmp_path / "tries"
    apps = _apps(world, dp)
    # The first attempt exits with a retryable code (75, EX_TEMPFAIL), the second succeeds.
    app = apps.app(
        f"echo try >> {tries}; [ $(wc -l < {tries}) -ge 2 ] || exit 75; touch {marker}",
        [f"file:{marker}"],
    )
    apps.apps[app]["install"]["retry_codes"] = [75]
    apps.publish(apps.deployment(app))
    world.run()
    (retry,) = world.site.messages(10034)
    assert retry["properties"]["exit_code"] == 75
    assert world.state().result == "retrying"
    assert not world.site.messages(5100) and not world.site.messages(10006)
    world.run()  # not due yet: nothing runs
    assert lines(tries) == ["try"]
    world.clock.advance(61)
    world.run()
    assert lines(tries) == ["try", "try"] and marker.exists()
    assert world.site.messages(1000)


def test_a_requirement_the_site_found_unmet_stops_everything_before_download(
    world: ClientWorld, dp: StoreServer, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    apps = _apps(world, dp)
    app = apps.app(f"echo run >> {runs}", [f"file:{tmp_path / 'tool'}"])
    entry = apps.deployment(app)
    entry["requirements_unmet"] = "no match: os_version >= 12"
    apps.publish(entry)
    world.run()
    (unmet,) = world.site.messages(3000)
    assert unmet["insertion_strings"][4] == "no match: os_version >= 12"
    assert not runs.exists() and dp.blob_requests() == []
    assert world.state().result == "requirements_not_met"
