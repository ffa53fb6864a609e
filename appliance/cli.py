"""Command line: `appliance run | status | setup-link | demo | update | analyze | models | token |
cdr | kpis | fleet | config`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import __version__
from .config import ConfigError, Settings, load_settings
from .system.logs import setup_logging
from .system.process import limit_malloc_arenas, private_files, single_threaded_blas

log = logging.getLogger("appliance.cli")

# commands that write the box's data (calls, store, keys, tokens): their files are closed to
# other users; `update` and `models` write for other users (the service's) and keep the umask
DATA_COMMANDS = frozenset({"run", "cdr", "token", "key", "setup-link", "demo", "analyze"})


def _cmd_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from .analysis.summary import render_summary
    from .media.session import Stages
    from .sources.files import AudioFileError, analyse_files

    if args.agent_channel is not None:
        settings.channels.agent_channel = args.agent_channel
    if args.no_asr:
        settings.asr.enabled = False
    if args.language:
        settings.asr.language = args.language
    stages = Stages.load(settings, wait=True)
    try:
        result = analyse_files(args.files, settings, stages=stages)
    except AudioFileError as exc:
        print(f"appliance analyze: {exc}", file=sys.stderr)
        return 2
    finally:
        stages.close()
    if args.json:
        json.dump(result, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(render_summary(result))
    return 0


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from .app import run, run_worker

    if args.sip_worker is not None:
        return run_worker(settings, args.sip_worker, args.sip_workers)
    return run(settings, config_path=args.config or os.environ.get("APPLIANCE_CONFIG"))


def _cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from .asr.model import ModelError, build, find_model

    model_dir = settings.asr.model_dir
    try:
        if args.action == "build":
            found = build(model_dir, force=args.force,
                          progress=lambda msg: print(f"models: {msg}", flush=True))
        else:
            found = find_model(model_dir)
            print(f"models: {found.path} (source {found.source}): verified")
    except ModelError as exc:
        print(f"appliance models: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    from .config import settings_reference

    print(settings_reference() if args.markdown else
          json.dumps(settings.model_dump(mode="json"), indent=2))
    return 0


def _cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from .web.tokens import TokenFile

    tokens = TokenFile(settings.paths.data_dir)
    if args.action == "create":
        try:
            secret = tokens.create(args.name, args.role)
        except ValueError as exc:
            print(f"appliance token: {exc}", file=sys.stderr)
            return 2
        print(secret)
        print(f"token for {args.name!r} ({args.role}); shown once, keep it safe", file=sys.stderr)
    elif args.action == "revoke":
        n = tokens.revoke(args.name)
        print(f"{n} token(s) of {args.name!r} revoked", file=sys.stderr)
        return 0 if n else 1
    else:
        for t in tokens.list():
            print(f"{t['name']}\t{t['role']}")
    return 0


def _open_queries(settings: Settings):  # noqa: ANN202 - (Database, Queries)
    from .query import Queries
    from .store.database import Database

    db = Database(settings.paths.data_dir, transcripts_in_memory=settings.privacy.encrypt)
    return db, Queries(db, settings)


def _cmd_key(args: argparse.Namespace, settings: Settings) -> int:
    from .system.keys import command

    return command(settings, args.action, new=args.new)


def _cmd_cdr(args: argparse.Namespace, settings: Settings) -> int:
    from .cdr.asterisk import decode_csv
    from .store.database import StoreBusy

    try:
        with open(args.file, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        print(f"appliance cdr: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        db, q = _open_queries(settings)
    except StoreBusy as exc:
        print(f"appliance cdr: {exc}: curl -H 'Authorization: Bearer TOKEN' --data-binary "
              f"@{args.file} http://{settings.web.bind_address}:{settings.web.port}"
              "/api/v1/cdr/asterisk", file=sys.stderr)
        return 3
    try:
        out = q.import_asterisk(decode_csv(raw), "cli", str(args.file))
    finally:
        db.close()
    for err in out["errors"]:
        print(f"{args.file}:{err['line']}: {err['error']}", file=sys.stderr)
    print(f"{out['accepted']} rows kept ({out['new']} new), {len(out['errors'])} bad, "
          f"{out['lines']} lines read")
    return 0 if out["accepted"] or not out["errors"] else 1


def _cmd_kpis(args: argparse.Namespace, settings: Settings) -> int:
    from .store.database import StoreBusy

    try:
        db, q = _open_queries(settings)
    except StoreBusy as exc:
        print(f"appliance kpis: {exc}: GET /api/v1/kpis?period={args.period}", file=sys.stderr)
        return 3
    try:
        if args.view == "figures":
            out = q.kpis(args.period)
        elif args.view == "compare":
            out = q.compare(args.period)
        elif args.view == "flags":
            out = {"flags": q.flags(args.period)}
        elif args.view == "missed":
            out = {"missed": q.missed(args.period)}
        else:
            out = q.clients()
    except ValueError as exc:
        print(f"appliance kpis: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    return 0


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0: healthy; 1: running with a failed check; 3: not running."""
    from .system.egress import egress
    from .system.health import box_health

    out = box_health(settings)
    out["egress"] = egress(settings)
    if args.json:
        json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    elif not out["running"]:
        print(f"appliance is not running (no fresh {settings.paths.data_dir}/run/daemon.json)")
    else:
        print(f"appliance {'healthy' if out['ok'] else 'NOT HEALTHY'} (pid {out['pid']}, "
              f"panel {out.get('web') or 'off'})")
        for name, check in out["checks"].items():
            print(f"  {name:<13}{'ok  ' if check['ok'] else 'FAIL'}  {check['detail']}")
    if not args.json:
        print("connects to (nothing else):")
        for d in out["egress"]["destinations"]:
            print(f"  {d['what']:<28}{d['address']}/{d['transport']}  ({d['setting']})")
    return 3 if not out["running"] else 0 if out["ok"] else 1


def _cmd_update(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from .system import update

    cfg = settings.update
    slots = update.Slots(Path(args.root) if args.root else cfg.root)
    try:
        if args.action == "keygen":
            update.generate_key(Path(args.path), Path(args.path).with_suffix(".pub"))
            print(f"private key {args.path} (keep it off the boxes), public key "
                  f"{Path(args.path).with_suffix('.pub')} (copy to {cfg.keys_dir})")
        elif args.action == "build":
            if not args.version or not args.key or not args.out:
                print("appliance update build DIR --version V --key PRIVATE.pem --out BUNDLE",
                      file=sys.stderr)
                return 2
            m = update.build_bundle(Path(args.path), args.version, Path(args.key), Path(args.out))
            print(f"bundle {args.out}: version {m['version']}, payload {m['payload']['size']} bytes")
        elif args.action == "apply":
            keys = update.trusted_keys(Path(args.keys) if args.keys else cfg.keys_dir)
            state = slots.apply(update.read_bundle(Path(args.path), keys))
            print(f"version {state['version']} installed in slot {state['pending']}; restart the "
                  "appliance (systemctl restart appliance) to run it")
        else:   # check
            from .system.health import box_health
            from .system.slots import healthy_for_update

            def healthy() -> bool:
                out = box_health(settings)
                return out["running"] and healthy_for_update(
                    {k: c["ok"] for k, c in out["checks"].items()})

            print(slots.confirm_or_rollback(healthy, cfg.confirm_deadline_s))
    except update.UpdateError as exc:
        print(f"appliance update: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_setup_link(args: argparse.Namespace, settings: Settings) -> int:
    """Print the first-run set-up link (exit 0), or say that set-up is done (exit 1). Makes
    the panel's secrets when missing, so the image's first boot can show the link."""
    from .system.health import daemon_state
    from .web.users import SetupToken, Users, secret_key

    data_dir = settings.paths.data_dir
    base = args.base or f"http://{settings.web.bind_address}:{settings.web.port}/"
    setup = SetupToken(data_dir)
    if daemon_state(data_dir) is not None:      # the daemon owns the store: it made the token
        done = not setup.path.exists()
    else:
        from .store.database import Database

        db = Database(data_dir, transcripts_in_memory=settings.privacy.encrypt)
        try:
            done = len(Users(db.users)) > 0
        finally:
            db.close()
    if done:
        print("set-up is done: sign in on the panel", file=sys.stderr)
        return 1
    secret_key(data_dir)                        # made once; the daemon's is kept
    token = setup.ensure()
    print(f"{base.rstrip('/')}/setup?token={token}")
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0: every call recorded and analysed as scripted; 1: the demo could not run;
    2: it ran, and the analysis missed something (listed)."""
    from pathlib import Path

    from .simulate.demo import DemoError, run_demo
    from .simulate.report import render_report
    from .simulate.dialogue import ScriptError
    from .simulate.voice import VoiceMissing

    try:
        report = run_demo(settings, Path(args.scripts) if args.scripts else None, args.timeout,
                          sip_port=args.pbx_port)
    except (DemoError, ScriptError, VoiceMissing) as exc:
        print(f"appliance demo: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(report.as_dict(), sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        print(render_report(report))
    return 0 if not report.problems else 2


def _cmd_fleet(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from .mqtt.fleet import Fleet

    host, _, port = args.broker.partition(":")
    fleet = Fleet(host, int(port or 1883), args.prefix or settings.mqtt.topic_prefix,
                  args.username or "", args.password or "", args.ca_file)
    fleet.start()
    if not fleet.subscribed.wait(10):
        print(f"appliance fleet: no answer from the broker at {args.broker}", file=sys.stderr)
        fleet.stop()
        return 3
    time.sleep(args.seconds)            # retained snapshots arrive at once; live ones as sent
    summary = fleet.summary("today" if args.today else "this_month")
    fleet.stop()
    json.dump(summary, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description=__doc__)
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    parser.add_argument("-c", "--config", help="TOML settings file (default: $APPLIANCE_CONFIG, "
                        "else embedded defaults)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the appliance daemon")
    p.add_argument("--sip-worker", type=int, help=argparse.SUPPRESS)     # started by the daemon
    p.add_argument("--sip-workers", type=int, default=1, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("status", help="is the running appliance healthy: registration, broker, "
                       "disk, recognition queue, model (exit 0 healthy, 1 not, 3 not running)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("setup-link", help="print the first-run link that creates the panel's "
                       "administrator (exit 1 once set-up is done)")
    p.add_argument("--base", help="panel address as the administrator reaches it (default: "
                   "web.bind_address and web.port)")
    p.set_defaults(func=_cmd_setup_link)

    p = sub.add_parser("demo", help="a simulated PBX places scripted calls (real speech, over "
                       "SIPREC) and sends call records to the running appliance, then shows "
                       "what it found")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds to wait for the calls to be analysed")
    p.add_argument("--scripts", help="TOML file of call scripts (default: the built-in ones)")
    p.add_argument("--pbx-port", type=int, default=5095,
                   help="UDP port of the simulated PBX's SIP endpoint (RTP from 31000)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("update", help="signed A/B updates: keygen, build a bundle, apply it, "
                       "check (confirm or roll back) after the restart")
    p.add_argument("action", choices=("keygen", "build", "apply", "check"))
    p.add_argument("path", nargs="?", default="", help="keygen: private key file; build: payload "
                   "folder; apply: the bundle")
    p.add_argument("--version", dest="version")
    p.add_argument("--key", help="build: the Ed25519 private key (PEM)")
    p.add_argument("--out", help="build: the bundle to write")
    p.add_argument("--root", help="slots root (default: update.root)")
    p.add_argument("--keys", help="trusted public keys folder (default: update.keys_dir)")
    p.set_defaults(func=_cmd_update)

    p = sub.add_parser("analyze", help="analyse a recorded call: one stereo file or two mono "
                       "files (agent, client)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the call JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    p.add_argument("--no-asr", action="store_true", help="conversation metrics only, no transcript")
    p.add_argument("--language", choices=("ru", "en", "auto"), help="speech language (default: asr.language)")
    p.add_argument("--agent-channel", type=int, choices=(0, 1),
                   help="stereo channel that carries the agent (default from settings: 0)")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("models", help="build or check the on-device speech model")
    p.add_argument("action", choices=("build", "status"))
    p.add_argument("--force", action="store_true", help="rebuild even if an intact model exists")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("token", help="API tokens for the PBX, a CRM or a central server")
    p.add_argument("action", choices=("create", "revoke", "list"))
    p.add_argument("name", nargs="?", default="", help="who uses the token (create, revoke)")
    p.add_argument("--role", default="integration",
                   choices=("admin", "supervisor", "viewer", "integration"),
                   help="integration: post CDRs and outcomes, read KPIs (default)")
    p.set_defaults(func=_cmd_token)

    p = sub.add_parser("key", help="the data key of encryption at rest ([privacy] encrypt): show, "
                       "rotate (the daemon seals every file again), unlock (from a passphrase)")
    p.add_argument("action", choices=("show", "rotate", "unlock"))
    p.add_argument("--new", action="store_true", help="unlock: set a new passphrase")
    p.set_defaults(func=_cmd_key)

    p = sub.add_parser("cdr", help="import an Asterisk Master.csv (the daemon must be stopped; "
                       "while it runs use POST /api/v1/cdr/asterisk)")
    p.add_argument("action", choices=("import",))
    p.add_argument("file")
    p.set_defaults(func=_cmd_cdr)

    p = sub.add_parser("kpis", help="KPIs as JSON (store not in use by the daemon)")
    p.add_argument("period", help="2026-11 (month), 2026-W48 (week) or 2026-11-24 (day)")
    p.add_argument("--view", default="figures",
                   choices=("figures", "compare", "flags", "missed", "clients"))
    p.set_defaults(func=_cmd_kpis)

    p = sub.add_parser("fleet", help="central side: add up the KPIs many boxes publish on a broker")
    p.add_argument("--broker", required=True, help="host[:port] of the central broker")
    p.add_argument("--prefix", help="topic prefix (default: mqtt.topic_prefix)")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--ca-file", help="CA certificates to verify the broker (TLS)")
    p.add_argument("--seconds", type=float, default=3.0, help="listen this long, then print")
    p.add_argument("--today", action="store_true", help="today's figures (default: this month)")
    p.set_defaults(func=_cmd_fleet)

    p = sub.add_parser("config", help="print the effective settings")
    p.add_argument("--markdown", action="store_true", help="print the settings reference")
    p.set_defaults(func=_cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    single_threaded_blas()      # before anything imports numpy
    args = build_parser().parse_args(argv)
    if args.command == "run":
        limit_malloc_arenas()   # before the first thread (the log writer) starts
    if args.command in DATA_COMMANDS:
        private_files()
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"appliance: {exc}", file=sys.stderr)
        return 2
    level = settings.log.level
    if args.command == "analyze" and not args.verbose and level in ("DEBUG", "INFO"):
        level = "WARNING"       # a one-shot report: only problems go to stderr
    # a running box must not wait for its log stream (the journal, a stalled disk)
    setup_logging(level, background=args.command == "run")
    if args.command == "analyze" and len(args.files) > 2:
        print("appliance analyze: give one stereo file or two mono files", file=sys.stderr)
        return 2
    return args.func(args, settings)


if __name__ == "__main__":
    sys.exit(main())
