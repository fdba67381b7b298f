"""Print the MQTT sessions kept in a SessionStore (lib/mqttsession/store.py).

    python tools/inspect_store.py --image flash.img                 # littlefs image
    python tools/inspect_store.py --image flash.img --root /.mqtt-test --json
    python tools/inspect_store.py --dir .mqtt                       # copied off a board

A directory comes from ``mpremote cp -r :/.mqtt .`` (give either the copied store or a
directory holding it). Without --root the store is looked for at /.mqtt, then in the
source's top directory itself (a copied store), then in every top-level directory that
holds host directories with sessions.

For each session: host, client ID, protocol version, session expiry, last packet ID,
epoch, incoming QoS 2 IDs, the QoS 2 packet IDs and releases of the hot state,
subscriptions and the pending messages in send order. A message's packet ID is the one
the device would resend it with: the message file's own ID counts only when its epoch is
the hot state's (a later loss of the broker's session voids it), an entry of the hot
state overrides it, and an ID held by an earlier message is not reused ("-": published
as a new message). Damaged files are listed with the reason; the device drops a damaged
message file when it loads the session, and starts without a damaged identity,
subscription or hot-state file. A directory where one of the store's files belongs (or a
file where one of its directories belongs) is damage too, as the device reports it.
Files ending in ".t" are leftovers of an interrupted atomic replace; the device ignores
them and overwrites them with its next write.

Nothing is ever written: an image is read into memory and mounted there.

Exit status: 0 when every file parsed, 1 when some file is damaged (everything else is
still reported), 2 on usage errors, an image that does not mount or no store found.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import inspect_store_v2 as v2
from inspect_format import (
    DEFAULT_ROOT,
    HEX8,
    ID_LOST,
    LAST,
    MSG,
    NEWER_ASIDE,
    NO_ID,
    NOT_A_DIR,
    NOT_A_FILE,
    NULL_DIR,
    SESSION_DIRS,
    SESSION_FILES,
    Damaged,
    Hot,
    belongs,
    key,
    moved_to,
    named,
    parse_hot,
    parse_identity,
    parse_message,
    parse_subs,
    text,
    unpack,
)
from inspect_report import (
    HostReport,
    Message,
    Problem,
    Release,
    Report,
    SessionReport,
    StoreReport,
    Subscription,
    format_text,
    preview,
)
from inspect_source import DirSource, ImageSource, Source, find_roots, is_dir, join


def _read_kind(src: Source, path: str, kind: bytes) -> bytes:
    try:
        data = src.read(path)
    except OSError as e:
        raise Damaged(v2.unreadable(e)) from e
    return unpack(kind, data)


def inspect_session(src: Source, path: str, host_dir: str) -> SessionReport:
    name = path.rsplit("/", 1)[-1]
    r = SessionReport(dir=name, path=path, null=name == NULL_DIR)
    if NEWER_ASIDE.search(name):
        r.notes.append("a session of a newer store format, set aside by "
                       "SessionStore(newer='aside'): kept, never read by the library")
        return r
    try:
        ents = src.entries(path)
    except OSError as e:
        r.damaged.append(Problem(path, f"unreadable directory: {e}"))
        return r
    files = {n for n, d in ents if not d}
    dirs = {n for n, d in ents if d}
    for n, d in ents:
        p = join(path, n)
        if n.endswith(".t") and not d:
            r.leftovers.append(p)
        elif d and n in SESSION_FILES:
            r.damaged.append(Problem(p, NOT_A_FILE))
            if n in ("hot", "s"):
                r.hot_state = "damaged"
        elif not d and n in SESSION_DIRS:
            r.damaged.append(Problem(p, NOT_A_DIR))
        elif (d and n not in SESSION_DIRS) or (not d and not (n in SESSION_FILES
                                                              or MSG.match(n))):
            r.unknown.append(p)

    def bad(n: str, e: Exception) -> None:
        r.damaged.append(Problem(join(path, n), str(e)))

    old = {"i", "u", "s"} & files or any(MSG.match(n) for n in files)
    # a directory holding neither format's files is a new session a power cut left
    # before its subdirectories and identity were written: format 2, as the library
    # opens it (it migrates only a directory with format 1 files)
    if not old or {"id", "hot", "subs"} & files or SESSION_DIRS & dirs:
        _inspect_v2(src, path, host_dir, r, files, dirs, bad)
        if old:
            r.notes.append("format 1 files beside format 2 (0.1.0 ran here after an "
                           "upgrade): the library adds their messages to the queue when "
                           "it opens the session")
        return r
    r.format = 1
    if old or not r.null:
        r.notes.append("format 1 (0.1.0): the library migrates it to format 2 in place "
                       "when it opens the session")

    # identity
    if "i" in files:
        try:
            _identity(r, _read_kind(src, join(path, "i"), b"i"), name, host_dir, bad, "i")
        except Damaged as e:
            bad("i", e)
    elif "i" not in dirs and not r.null:
        bad("i", Damaged("identity file missing"))  # the device reports it, writes a new one
    if r.client_id is None and not r.null and not name.startswith("~"):
        r.client_id = name  # a plain directory name is the client ID itself

    # subscriptions
    if "u" in files:
        try:
            subs = parse_subs(_read_kind(src, join(path, "u"), b"u"))
            r.subscriptions = [Subscription(text(f), q) for f, q in subs]
        except Damaged as e:
            bad("u", e)

    # hot state; when missing or damaged the device starts from zeros, as shown
    hot = Hot()
    if "s" in files:
        try:
            hot = parse_hot(_read_kind(src, join(path, "s"), b"s"))
            r.hot_state = "ok"
        except Damaged as e:
            bad("s", e)
            r.hot_state = "damaged"
    r.last_pid, r.epoch, r.next_seq, r.rx2 = hot.pid, hot.epoch, hot.nseq, hot.rx2
    r.releases = [Release(seq, p, rel) for seq, (p, rel) in sorted(hot.out.items())]

    # pending messages, in the order the device loads them
    used: set[int] = set()
    for n in sorted(n for n in files if MSG.match(n)):
        try:
            if not HEX8.match(n[1:]):
                raise Damaged("bad sequence number in the file name")
            seq = int(n[1:], 16)
            m = parse_message(_read_kind(src, join(path, n), b"m"))
        except Damaged as e:
            bad(n, e)
            continue
        pid = m.pid
        released = False
        o = hot.out.get(seq)
        if o:
            pid, released = o
        elif m.epoch != hot.epoch:
            pid = 0  # from before the broker lost the session: void
        r.next_seq = max(r.next_seq, seq + 1)  # as the device counts on
        shown: int | None = None
        if pid and pid not in used:
            used.add(pid)
            shown = pid
        r.messages.append(Message(
            file=n, seq=seq, qos=m.flags & 3, retain=bool(m.flags & 4), pid=shown,
            released=released and shown is not None, stored_pid=m.pid, stored_epoch=m.epoch,
            topic=text(m.topic), length=len(m.payload), preview=preview(m.payload)))
    return r


def _identity(r: SessionReport, body: bytes, name: str, host_dir: str,
              bad: Callable[[str, Exception], None], fname: str) -> None:
    try:
        ident = parse_identity(body)
        r.client_id, r.host = text(ident.client_id), text(ident.host)
        r.version, r.expiry = ident.version, ident.expiry
        moved = None if r.null or belongs(ident.client_id, name) else moved_to(
            ident.client_id, name)
        if moved is not None:
            r.client_id = text(moved)
            r.notes.append(f"moved aside from client ID {text(ident.client_id)!r} (a null "
                           "session was assigned that ID), cut before its identity was "
                           "rewritten: the library loads it as this client ID")
        if not r.null and moved is None and not belongs(ident.client_id, name):
            bad(fname, Damaged(f"belongs to client ID {r.client_id!r}, stored under {name!r}"))
        elif not belongs(ident.host, host_dir):
            bad(fname, Damaged(f"host {r.host!r} does not belong in host directory "
                               f"{host_dir!r}"))
    except Damaged as e:
        bad(fname, e)


def _inspect_v2(src: Source, path: str, host_dir: str, r: SessionReport, files: set[str],
                dirs: set[str], bad: Callable[[str, Exception], None]) -> None:
    # format 2 (lib/mqttsession/stored.py); a directory named as one of its files is
    # reported already (inspect_session)
    r.format = 2
    name = path.rsplit("/", 1)[-1]

    def body(fname: str, kind: bytes) -> bytes | None:
        if fname not in files:
            return None
        try:
            return unpack(kind, src.read(join(path, fname)), 2)
        except OSError as e:
            bad(fname, Damaged(v2.unreadable(e)))
        except Damaged as e:
            bad(fname, e)
        return None

    b = body("id", b"i")
    if b is not None:
        _identity(r, b, name, host_dir, bad, "id")
    elif "id" not in files | dirs and not r.null:
        # not damage: the library writes the identity after the directory exists (a
        # new session's first write, a null session's adoption: renamed, then written),
        # so a power cut between the two leaves none; it loads the session silently as
        # the client ID asked for and writes the identity then
        r.notes.append(NO_ID)
    if r.client_id is None and not r.null:
        r.client_id = named(name)
    b = body("subs", b"u")
    if b is not None:
        try:
            r.subscriptions = [Subscription(text(f), q) for f, q in parse_subs(b)]
        except Damaged as e:
            bad("subs", e)
    b = body("owed", b"o")
    if b is not None:
        try:
            r.owed = [Subscription(text(f), None if q == 0x80 else q) for f, q in parse_subs(b)]
        except Damaged as e:
            bad("owed", e)
    hot = v2.Hot2()
    b = body("hot", b"s")
    if b is None and "hot" in files:
        r.hot_state = "damaged"
    if b is not None:
        try:
            hot = v2.parse_hot2(b)
            r.hot_state = "ok"
        except v2.Damaged as e:
            bad("hot", Damaged(str(e)))
            r.hot_state = "damaged"
    r.last_pid, r.epoch, r.next_seq, r.rx2 = hot.pid, hot.epoch, hot.nseq, hot.rx2
    r.watermark = hot.watermark
    r.releases = [Release(seq, p, rel) for seq, (p, rel) in sorted(hot.out.items())]
    b = body("aside", b"x")
    if b is not None:
        try:
            r.set_aside, recs = v2.parse_aside(b)
            r.aside = [v2.Aside(text(t), q, ret, why, len(m), preview(m))
                       for t, m, q, ret, why in recs]
        except v2.Damaged as e:
            bad("aside", Damaged(str(e)))

    def bad2(n: str, e: Exception) -> None:
        bad(n, Damaged(str(e)))

    used: set[int] = set()
    for f, m in v2.queue(src, path, hot, bad2, unpack):
        pid = m.pid
        released = False
        o = hot.out.get(m.seq)
        if o:
            pid, released = o
        elif m.epoch != hot.epoch:
            pid = 0
        r.next_seq = max(r.next_seq, m.seq + 1)
        shown: int | None = None
        if pid and pid not in used:
            used.add(pid)
            shown = pid
        r.messages.append(Message(
            file=f, seq=m.seq, qos=m.flags & 3, retain=bool(m.flags & 4), pid=shown,
            released=released and shown is not None, stored_pid=m.pid, stored_epoch=m.epoch,
            topic=text(m.topic), length=len(m.payload), preview=preview(m.payload)))


def inspect_host(src: Source, path: str) -> HostReport:
    name = path.rsplit("/", 1)[-1]
    h = HostReport(dir=name, path=path)
    try:
        ents = src.entries(path)
    except OSError as e:
        h.damaged.append(Problem(path, f"unreadable directory: {e}"))
        return h
    for n, d in ents:
        p = join(path, n)
        if d and n == LAST:  # never a session's directory name (store.py's _key)
            h.damaged.append(Problem(p, NOT_A_FILE))
        elif d and n.endswith(".t"):  # never a session's directory name either
            h.deleting.append(p)
            h.leftovers.append(p)
        elif d:
            h.sessions.append(inspect_session(src, p, name))
        elif n == LAST:
            try:
                h.last = text(_read_kind(src, p, b"l"))
            except Damaged as e:
                h.damaged.append(Problem(p, str(e)))
        elif n.endswith(".t"):
            h.leftovers.append(p)
        else:
            h.unknown.append(p)
    for s in h.sessions:
        s.last = h.last is not None and s.client_id == h.last and not s.null
        aside = key(h.last.encode() + b"~old") if h.last is not None else None
        if s.last and NO_ID in s.notes and not any(x.dir == aside for x in h.sessions):
            # "last" is written once the identity is: the directory lost its files
            # (littlefs dropping its newer commits), reported by the library's load too.
            # Unless a session of that ID was moved aside: an adoption cut before the
            # new one's identity (v5.adopt), "last" still naming the old one's ID
            s.notes.remove(NO_ID)
            s.damaged.append(Problem(join(s.path, "id"), ID_LOST))
        if h.host is None and s.host is not None:
            h.host = s.host
    if h.host is None and not name.startswith("~"):
        h.host = name
    for s in h.sessions:
        if s.host is None and not NEWER_ASIDE.search(s.dir):
            s.host = h.host  # no identity (yet): the host directory's
    return h


def inspect(src: Source, roots: Sequence[str]) -> Report:
    rep = Report(source=src.label)
    for root in roots:
        st = StoreReport(root=root)
        for n, d in src.entries(root):
            if d:
                st.hosts.append(inspect_host(src, join(root, n)))
            else:
                st.unknown.append(join(root, n))
        rep.stores.append(st)
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="In the pending list a packet ID ending in r is a QoS 2 message after "
               "PUBREC (PUBREL is resent); '-' means it goes out as a new message.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--image", type=Path, help="littlefs image file (e.g. flash.img)")
    g.add_argument("--dir", type=Path, help="directory copied off a board")
    p.add_argument("--block-size", type=int, default=4096, help="littlefs block size (4096)")
    p.add_argument("--block-count", type=int,
                   help="littlefs block count (default: image size / block size)")
    p.add_argument("--root", help="store directory in the source (default: /.mqtt or found)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    a = p.parse_args(argv)
    if a.dir is not None and a.block_count is not None:
        p.error("--block-count only applies to --image")
    if a.block_count is not None and a.block_count < 0:
        p.error(f"--block-count {a.block_count}: a count of blocks (0: as the image says)")

    src: Source
    try:
        src = ImageSource(a.image, a.block_size, a.block_count) if a.image else DirSource(a.dir)
    except (OSError, ValueError) as e:
        print(f"inspect_store: {e}", file=sys.stderr)
        return 2
    if a.root is not None:
        roots = [join(a.root)]
        if not is_dir(src, roots[0]):
            print(f"inspect_store: no directory {roots[0]} in {src.label}", file=sys.stderr)
            return 2
    else:
        try:
            roots = find_roots(src)
        except OSError as e:
            print(f"inspect_store: {src.label}: {e}", file=sys.stderr)
            return 2
        if not roots:
            print(f"inspect_store: no session store found in {src.label} "
                  f"(looked for {DEFAULT_ROOT}; give --root)", file=sys.stderr)
            return 2
    try:
        rep = inspect(src, roots)
    except OSError as e:
        print(f"inspect_store: {src.label}: {e}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(rep.as_dict(), indent=2) if a.json else format_text(rep))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if rep.damaged() else 0


if __name__ == "__main__":
    import usevenv  # a system Python lacks the tools: run in .venv

    usevenv.ensure(modules=("littlefs",))
    sys.exit(main())
