"""The status message catalog: one numbered message per event, SMS numbers where they exist.

Insertion strings are positional (%1, %2, ...) as in SMS. Client deployment messages always
use %1 = deployment ID, %2 = package ID, %3 = program name, so a viewer can filter on them.
Each message also says which deployment state it moves a client to, so roll-ups need no
second table of rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    INFO = "informational"
    WARNING = "warning"
    ERROR = "error"


class ClientState(StrEnum):
    """A client's state within one deployment, as the roll-up shows it."""

    UNKNOWN = "unknown"  # targeted, nothing heard yet
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REQUIREMENTS_NOT_MET = "requirements_not_met"
    INSTALLED = "installed"  # an application: detection says it is there
    NOT_INSTALLED = "not_installed"  # an application: detection says it is absent


#: What counts as done in a deployment of an application, by its purpose (phases, reports).
COMPLIANT = {"install": "installed", "uninstall": "not_installed"}


@dataclass(frozen=True)
class StatusMessage:
    id: int
    severity: Severity
    component: str
    text: str
    description: str
    action: str
    state: ClientState | None = None  # the deployment state this message moves a client to
    # An application message whose state is what detection said: INSTALLED when its
    # properties say "detected": true, NOT_INSTALLED otherwise.
    by_detection: bool = False

    def state_for(self, properties: dict[str, object]) -> ClientState | None:
        if not self.by_detection:
            return self.state
        return S.INSTALLED if properties.get("detected") is True else S.NOT_INSTALLED

    def render(self, insertion_strings: list[str] | tuple[str, ...]) -> str:
        def sub(match: re.Match[str]) -> str:
            index = int(match.group(1)) - 1
            return insertion_strings[index] if 0 <= index < len(insertion_strings) else "?"

        return re.sub(r"%(\d+)", sub, self.text)


I, W, E = Severity.INFO, Severity.WARNING, Severity.ERROR  # noqa: E741 - as in SMS
S = ClientState
_PD = "Deployment %1, package %2, program %3: "

_MESSAGES = [
    # --- client: policy (PolicyAgent) ---
    StatusMessage(
        10002,
        I,
        "PolicyAgent",
        _PD + "policy received.",
        "The client received the deployment in its policy.",
        "None.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10003,
        I,
        "PolicyAgent",
        _PD + "available; it runs when requested, mandatory at %4.",
        "The deployment is available but not yet mandatory.",
        "Run `qm client run --install DEPLOYMENTID` on the client to run it now.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10057,
        W,
        "PolicyAgent",
        _PD + "expired at %4; it will not run.",
        "The deployment's expiry time passed before the program ran.",
        "Create a new deployment or extend the expiry.",
        S.FAILED,
    ),
    StatusMessage(
        10060,
        I,
        "PolicyAgent",
        _PD + "waiting for a maintenance window; next opens at %4.",
        "A mandatory run is held until a maintenance window opens.",
        "None, or allow the deployment to run outside maintenance windows.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10061,
        E,
        "PolicyAgent",
        "Policy refused: %1.",
        "The policy failed signature, expiry or rollback checks.",
        "Check the site's signing key and the client's clock; re-register if the "
        "client was given the wrong site key.",
    ),
    StatusMessage(
        10080,
        E,
        "PolicyAgent",
        "Root metadata refused by the root chain check: %1.",
        "The site offered a new root (the list of online keys and approvers) that is not "
        "signed by a threshold of the root keys the client trusts. The client keeps its "
        "current root: a forged key list changes nothing.",
        "If the root keys really changed, sign the new root with enough of the old root "
        "keys (`qm keys root sign`); otherwise treat the site as compromised "
        "(docs/security.md, Compromise and recovery).",
    ),
    StatusMessage(
        10081,
        E,
        "PolicyAgent",
        "Policy refused by the trust log check: %1.",
        "The policy's trust log head does not extend the head this client saw before: an "
        "entry was removed or altered, or the site's database was rolled back.",
        "Run `qm audit verify` on the site; restore the log or investigate a compromise.",
    ),
    StatusMessage(
        10082,
        E,
        "PolicyAgent",
        _PD + "refused by the approval threshold check: %4.",
        "Too few approvers named by the root signed this exact package version. Nothing "
        "was downloaded or run.",
        "Approvers sign it with `qm release approve`; see `qm package show` for pending approvals.",
        S.FAILED,
    ),
    StatusMessage(
        10083,
        E,
        "PolicyAgent",
        _PD + "refused by the approved scope check: %4.",
        "The release is approved, but not for the collection this deployment targets. "
        "Nothing was downloaded or run.",
        "Approvers approve it for that collection (`qm release approve --collection`), or "
        "deploy it only where it is approved.",
        S.FAILED,
    ),
    StatusMessage(
        10084,
        E,
        "PolicyAgent",
        _PD + "refused by the approved commands check: %4.",
        "The program command, or an application's commands, detection rules or run-as "
        "account, differ from what the approvers signed. Nothing was downloaded or run.",
        "Approve the changed program or revision, or find who changed it (`qm audit`).",
        S.FAILED,
    ),
    StatusMessage(
        10085,
        E,
        "PolicyAgent",
        "Policy refused by the online key check: %1.",
        "The policy is not signed by an online key of the root this client pinned: a "
        "stolen key that the root keys rotated out, or a site whose new key is not yet in "
        "a root.",
        "Sign a new root listing the site's current keys (`qm keys root edit "
        "--online-from-site`, then `qm keys root sign` and `qm keys root install`).",
    ),
    # --- client: content (ContentAccess) ---
    StatusMessage(
        10035,
        I,
        "ContentAccess",
        _PD + "downloading version %4 (%5 bytes to fetch) from %6.",
        "The client started downloading package content.",
        "None.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10036,
        I,
        "ContentAccess",
        _PD + "content of version %4 verified: %5 files, %6 bytes downloaded from %7.",
        "Every file of the package version is present and matches its SHA-256.",
        "None.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10037,
        I,
        "ContentAccess",
        _PD + "download of version %4 paused by the bandwidth schedule (%5 of %6 bytes kept); "
        "it resumes at %7.",
        "The client's bandwidth limit (set at the site, carried in policy) allows no download "
        "now. The bytes received are kept and the transfer resumes from them (Range).",
        "None; to let it download now, change the bandwidth rule at the site.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10050,
        W,
        "ContentAccess",
        _PD + "distribution point %4 failed: %5; trying the next one.",
        "A DP could not be reached or refused a request.",
        "Check the DP with `qm dp list`; the client fell back to another DP.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10051,
        E,
        "ContentAccess",
        _PD + "content of version %4 could not be obtained from any distribution point: %5.",
        "No DP offered a good copy of the package version.",
        "Check `qm package show` for DP states and `qm dp validate`; the client "
        "retries at its next policy poll.",
        S.FAILED,
    ),
    StatusMessage(
        10055,
        E,
        "ContentAccess",
        _PD + "manifest of version %4 refused: %5.",
        "The manifest was unsigned, wrongly signed, or did not match the package "
        "hash in policy. Nothing was downloaded or run.",
        "Check the DP that served it; the site signing key may have changed.",
        S.FAILED,
    ),
    StatusMessage(
        10075,
        E,
        "ContentAccess",
        _PD + "file %5 (blob %6) from distribution point "
        "%4 failed hash verification: expected %7, got %8 (0x80091007).",
        "The bytes a DP served do not match the published SHA-256. The client "
        "discarded them and tries the next DP; the site revalidates that DP.",
        "None: the DP is revalidated and repaired automatically. If it recurs, "
        "check the DP host's disk.",
        S.IN_PROGRESS,
    ),
    # --- client: execution (ExecutionManager) ---
    StatusMessage(
        10005,
        I,
        "ExecutionManager",
        _PD + "program started: %4.",
        "The program's command line was started.",
        "None.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10006,
        E,
        "ExecutionManager",
        _PD + "program failed with exit code %4.",
        "The program ended with an exit code that means failure (also when its retryable "
        "code came back after the last retry). The message carries the last 64 KiB of the "
        "program's output, secrets from its command line masked.",
        "Read the output with the message (qm status messages --json, or qm deploy status "
        "ID --client NAME), then execmgr.log on the client.",
        S.FAILED,
    ),
    StatusMessage(
        10007,
        E,
        "ExecutionManager",
        _PD + "program could not be started: %4.",
        "The command line could not be run (missing file, no permission).",
        "Fix the program's command line or working directory.",
        S.FAILED,
    ),
    StatusMessage(
        10008,
        I,
        "ExecutionManager",
        _PD + "program succeeded with exit code %4.",
        "The program ended with a success exit code.",
        "None.",
        S.SUCCEEDED,
    ),
    StatusMessage(
        10018,
        W,
        "ExecutionManager",
        _PD + "requirements not met: %4.",
        "The client does not meet the program's requirements; nothing was downloaded or run.",
        "Target clients that meet the requirements, or change them.",
        S.REQUIREMENTS_NOT_MET,
    ),
    StatusMessage(
        10021,
        I,
        "ExecutionManager",
        _PD + "program succeeded with exit code %4; a %5 restart is required.",
        "The program succeeded and asked for a restart (3010 soft, 1641 hard).",
        "Restart the computer in a maintenance window.",
        S.SUCCEEDED,
    ),
    StatusMessage(
        10034,
        W,
        "ExecutionManager",
        _PD + "program returned retryable exit code %4; retry %5 of %6 in %7 seconds.",
        "The exit code is listed as retryable for this program. On Linux and macOS an exit "
        "status has 8 bits: a listed code above 255 (1618) arrives as its low 8 bits (82) and "
        "is read as the listed code; the message names both.",
        "None.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10070,
        E,
        "ExecutionManager",
        _PD + "program exceeded its maximum run time of %4 seconds and was stopped.",
        "The program ran longer than its maximum run time and was killed. The message "
        "carries the last 64 KiB of what it printed.",
        "Read its output with the message; raise --max-runtime or fix the program so it "
        "does not wait for input.",
        S.FAILED,
    ),
    StatusMessage(
        10072,
        W,
        "ExecutionManager",
        _PD + "program interrupted because the agent stopped (%4); it runs again when the "
        "agent starts.",
        "The agent was stopped (SIGTERM, shutdown) or killed while the program ran. The "
        "program was stopped with it; the deployment's rerun rule allows another run after a "
        "failed one, so it is retried at the next start. Carries the program's output so far.",
        "None, unless it happens at every shutdown: then look at what stops the agent.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        10073,
        E,
        "ExecutionManager",
        _PD + "program interrupted because the agent stopped (%4); the rerun rule (%5) does "
        "not run it again.",
        "The agent was stopped or killed while the program ran, and the deployment's rerun "
        "rule does not allow a run after a failed one.",
        "Check the computer; to run the program again, change the rerun rule or make a new "
        "deployment.",
        S.FAILED,
    ),
    # --- client: applications (Configuration Manager's enforcement-state numbers) ---
    StatusMessage(
        1000,
        I,
        "AppEnforce",
        _PD + "application %4 %5 succeeded; detection says %6.",
        "The install (or uninstall) program ran and detection, evaluated afterwards, agrees: "
        "the evidence (each rule and what it saw) is in the message properties.",
        "None.",
        S.INSTALLED,
        by_detection=True,
    ),
    StatusMessage(
        1001,
        I,
        "AppDiscovery",
        _PD + "application %4 is compliant (%5); nothing downloaded or run.",
        "Detection already says what the deployment wants: installed for an install, absent "
        "for an uninstall. Also sent by re-evaluation, at most once per cycle.",
        "None.",
        S.INSTALLED,
        by_detection=True,
    ),
    StatusMessage(
        1100,
        W,
        "AppDiscovery",
        _PD + "application %4 is no longer detected (drift): %5; installing it again.",
        "A required application that was installed is gone (someone removed it). The client "
        "reinstalls it in the same run.",
        "None, unless it recurs: find out what removes it.",
        S.IN_PROGRESS,
    ),
    StatusMessage(
        1101,
        W,
        "AppDiscovery",
        _PD + "application %4 is no longer detected: %5; the deployment is only available.",
        "An application of an available deployment disappeared; it is not reinstalled.",
        "None, or make the deployment required.",
        S.NOT_INSTALLED,
    ),
    StatusMessage(
        1102,
        I,
        "AppDiscovery",
        _PD + "application %4 is superseded by %5, deployed to this client as required; "
        "not enforced (detection: %6).",
        "A required install of the application that replaces this one is targeted at the "
        "client, so this deployment neither installs nor repairs it; detection still runs "
        "and says what is there.",
        "Retire this deployment once every client has the new application.",
        by_detection=True,
    ),
    StatusMessage(
        2370,
        W,
        "DistributionManager",
        "Client %2 reported bad bytes for package hash %3 from peer %1; the peer is not offered "
        "until it re-validates its cache.",
        "A peer (a client serving its cache to its boundary) served bytes that do not match "
        "their hash. Nothing unverified was used: the client fell back to the next source in "
        "the same run. The peer's holdings are withdrawn; it re-hashes its whole cache at its "
        "next run and is offered again only after that.",
        "None, unless one peer repeats this: check its disk.",
    ),
    StatusMessage(
        2371,
        I,
        "DistributionManager",
        "Peer %1 re-validated its cache and is offered to its boundary again.",
        "After a report of bad bytes the peer re-hashed every blob it holds, removed any that "
        "did not match, and reported what it holds now.",
        "None.",
    ),
    StatusMessage(
        3000,
        W,
        "AppIntentEval",
        _PD + "application %4: requirements not met: %5.",
        "The client does not meet the application's requirements; nothing was downloaded or run.",
        "Target clients that meet the requirements, or change them.",
        S.REQUIREMENTS_NOT_MET,
    ),
    StatusMessage(
        5001,
        E,
        "AppDiscovery",
        _PD + "application %4: detection could not be evaluated: %5.",
        "A detection rule could not give an answer (a script that timed out or could not "
        "start, an unreadable file, no dpkg or rpm on the client); nothing was run.",
        "Fix the rule or the client; the next run evaluates again.",
        S.FAILED,
    ),
    StatusMessage(
        5004,
        E,
        "AppEnforce",
        _PD + "application %4: dependency %5 could not be installed: %6; this application's "
        "install did not run.",
        "A dependency must be installed first and failed.",
        "Fix the dependency (see its own messages); the next run tries again.",
        S.FAILED,
    ),
    StatusMessage(
        5008,
        E,
        "AppEnforce",
        _PD + "application %4: superseded application %5 could not be uninstalled: %6.",
        "Supersedence with =uninstall removes the old application first; that failed, so the "
        "new one was not installed.",
        "Check the superseded application's uninstall program and detection.",
        S.FAILED,
    ),
    StatusMessage(
        5100,
        E,
        "AppEnforce",
        _PD + "application %4: installed but not detected: the install program exited %5, "
        "and detection says absent (0x87D00324): %6.",
        "The program reported success, but the software is not there. The evidence (each rule "
        "and what it saw) is in the message properties.",
        "Fix the install program or the detection rules; the next run tries again.",
        S.FAILED,
    ),
    StatusMessage(
        5101,
        E,
        "AppEnforce",
        _PD + "application %4: uninstalled but still detected: the uninstall program exited "
        "%5, and detection says present (0x87D00325): %6.",
        "The uninstall program reported success, but the software is still there.",
        "Fix the uninstall program or the detection rules; the next run tries again.",
        S.FAILED,
    ),
    # --- site: content library and distribution (SMS distribution manager range) ---
    StatusMessage(
        2300,
        I,
        "ContentLibrary",
        "Package %1 version %2 published: package hash "
        "%3, %4 files, %5 bytes (%6 new bytes stored).",
        "A snapshot of the source folder was stored and signed.",
        "None.",
    ),
    StatusMessage(
        2302,
        E,
        "DistributionManager",
        "Distribution of package %1 version %2 to distribution point %3 failed: %4.",
        "The DP could not store the package version.",
        "Check the DP host (disk, network) and `qm dp list`; it retries.",
    ),
    StatusMessage(
        2330,
        I,
        "DistributionManager",
        "Package %1 version %2 installed on distribution point %3 (%4 bytes transferred).",
        "Every blob of the version is on the DP and verified.",
        "None.",
    ),
    StatusMessage(
        2342,
        I,
        "DistributionManager",
        "Started distributing package %1 version %2 "
        "to distribution point %3 (%4 bytes to transfer).",
        "The DP began pulling the blobs it lacks.",
        "None.",
    ),
    StatusMessage(
        2360,
        W,
        "DistributionManager",
        "Client %4 reported a hash mismatch for "
        "package %1 version %2 on distribution point %3; revalidating.",
        "A client found bad bytes on a DP. The DP is asked to re-hash its copy; the copy "
        "stays in service until that re-hash confirms the damage (a client's report alone "
        "proves nothing), and clients fall back to other DPs in the same run.",
        "None: the DP revalidates and repairs itself.",
    ),
    StatusMessage(
        2361,
        I,
        "DistributionManager",
        "Distribution point %3 validated package %1 version %2: %4 blobs good.",
        "Every blob was re-hashed and matched.",
        "None.",
    ),
    StatusMessage(
        2362,
        E,
        "DistributionManager",
        "Distribution point %3 found %4 bad blobs in package %1 version %2; re-fetching them.",
        "Validation found blobs whose bytes no longer match.",
        "None: they are re-fetched. Check the DP host's disk if it recurs.",
    ),
    # --- site: administration ---
    StatusMessage(
        3001,
        I,
        "SiteServer",
        "Client %1 registered (%2).",
        "A client agent registered with the site.",
        "None.",
    ),
    StatusMessage(
        3011,
        I,
        "SiteServer",
        "Deployment %1 paused by an administrator.",
        "Clients hold off and no further phase is released.",
        "Resume it with `qm deploy resume`.",
    ),
    StatusMessage(
        3012,
        I,
        "SiteServer",
        "Deployment %1 resumed by an administrator; %2 failures accepted.",
        "The rollout continues; the failures counted so far no "
        "longer count against the error threshold.",
        "None.",
    ),
    StatusMessage(
        3013,
        W,
        "SiteServer",
        "Deployment %1 cancelled by an administrator.",
        "The deployment left every client's policy for good.",
        "Create a new deployment to deploy the program again.",
    ),
    StatusMessage(
        3014,
        I,
        "SiteServer",
        "Deployment %1: phase %2 of %3 released (%4).",
        "The previous phase reached the success threshold.",
        "None.",
    ),
    StatusMessage(
        3015,
        W,
        "SiteServer",
        "Deployment %1 paused automatically: %2 of released "
        "clients failed, above the %3% error threshold.",
        "Too many clients of the released phases failed.",
        "Find out why with `qm deploy status`, then `qm deploy resume` (accepting "
        "these failures) or `qm deploy cancel`.",
    ),
]

CATALOG: dict[int, StatusMessage] = {m.id: m for m in _MESSAGES}


def lookup(message_id: int) -> StatusMessage:
    try:
        return CATALOG[message_id]
    except KeyError:
        raise KeyError(f"status message {message_id} is not in the catalog") from None


def catalog_markdown() -> str:
    """The status message reference, as docs/status-messages.md carries it."""
    lines = [
        "# Status message catalog",
        "",
        "Generated from `quartermaster.core.status_catalog` (`qm status catalog --markdown`); "
        "a test checks that this file matches the code.",
        "",
        "Insertion strings are positional (%1, %2, ...). Client deployment messages always use "
        "%1 = deployment ID, %2 = package ID, %3 = program name.",
        "",
        "| ID | severity | component | text | sets client state |",
        "|---|---|---|---|---|",
    ]
    for m in sorted(CATALOG.values(), key=lambda m: m.id):
        state = "installed or not_installed, by detection" if m.by_detection else m.state or ""
        lines.append(f"| {m.id} | {m.severity} | {m.component} | {m.text} | {state} |")
    lines += ["", "## Descriptions and what to do", ""]
    for m in sorted(CATALOG.values(), key=lambda m: m.id):
        lines += [f"### {m.id}", "", m.description, "", f"**What to do:** {m.action}", ""]
    return "\n".join(lines)
