#!/usr/bin/env python3
"""Workload and verifier for scripts/crash-loop.sh.

  crash_workload.py init STATE_DIR
  crash_workload.py run MNT STATE_DIR SEED      # runs until killed
  crash_workload.py verify MNT STATE_DIR        # exit 0 if the tree is right

`run` applies random operations to the mount and journals each one: a
"begin" line before it starts and an "end" line after it returned. The
model (STATE_DIR/model.pickle) is the tree as of the last verification.
`verify` replays the journal: every ended operation must be in the tree;
the one operation in flight (begun, not ended) may be wholly there or
wholly absent — except a data write, which FUSE splits into 1 MiB
requests, so each byte of the file it touched must be either its old or
its new value. No file may hold bytes it was never given. Afterwards the
model is rebuilt from the tree and the journal reset.
"""
import json
import os
import pickle
import random
import sys


def data_for(n, length):
    return random.Random(n).randbytes(length)


def load(state):
    with open(os.path.join(state, "model.pickle"), "rb") as f:
        return pickle.load(f)


def save(state, model):
    tmp = os.path.join(state, "model.pickle.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(model, f)
    os.replace(tmp, os.path.join(state, "model.pickle"))
    open(os.path.join(state, "journal"), "w").close()


def empty_model():
    # paths: file path -> inode id; inodes: id -> bytearray; dirs: set of dir paths
    return {"paths": {}, "inodes": {}, "dirs": {""}, "next": 1}


def apply(m, op):
    """Apply one journaled operation to the model."""
    kind = op["kind"]
    if kind == "create":
        i = m["next"]
        m["next"] += 1
        m["inodes"][i] = bytearray(data_for(op["n"], op["len"]))
        m["paths"][op["path"]] = i
    elif kind == "append":
        m["inodes"][m["paths"][op["path"]]] += data_for(op["n"], op["len"])
    elif kind == "overwrite":
        buf = m["inodes"][m["paths"][op["path"]]]
        d = data_for(op["n"], op["len"])
        end = op["off"] + len(d)
        if len(buf) < end:
            buf.extend(b"\0" * (end - len(buf)))
        buf[op["off"]:end] = d
    elif kind == "rename":
        if m["paths"].get(op["dst"]) != m["paths"][op["src"]]:  # same inode: a no-op
            m["paths"][op["dst"]] = m["paths"].pop(op["src"])
    elif kind == "rename_dir":
        src, dst = op["src"], op["dst"]
        m["dirs"] = {dst + d[len(src):] if d == src or d.startswith(src + "/") else d for d in m["dirs"]}
        m["paths"] = {
            (dst + p[len(src):] if p.startswith(src + "/") else p): i for p, i in m["paths"].items()
        }
    elif kind == "unlink":
        m["paths"].pop(op["path"])
    elif kind == "link":
        m["paths"][op["dst"]] = m["paths"][op["src"]]
    elif kind == "mkdir":
        m["dirs"].add(op["path"])
    elif kind == "rmdir":
        m["dirs"].discard(op["path"])
    elif kind == "fsync":
        pass
    gc(m)


def gc(m):
    live = set(m["paths"].values())
    for i in list(m["inodes"]):
        if i not in live:
            del m["inodes"][i]


def view(m):
    """path -> None (dir) or bytes (file)."""
    v = {d: None for d in m["dirs"]}
    for p, i in m["paths"].items():
        v[p] = bytes(m["inodes"][i])
    return v


def read_tree(mnt):
    v = {"": None}
    inos = {}
    for root, dirs, files in os.walk(mnt):
        rel = os.path.relpath(root, mnt)
        rel = "" if rel == "." else "/" + rel
        for d in dirs:
            v[rel + "/" + d] = None
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                v[rel + "/" + f] = fh.read()
            inos.setdefault(os.lstat(p).st_ino, []).append(rel + "/" + f)
    return v, inos


def pick_file(m, rng):
    return rng.choice(sorted(m["paths"])) if m["paths"] else None


def subdirs(m, d):
    return [x for x in m["dirs"] if x.startswith(d + "/")]


def run(mnt, state, seed):
    m = load(state)
    rng = random.Random(seed)
    jfd = os.open(os.path.join(state, "journal"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    n = seed * 1_000_000
    while True:
        n += 1
        d = rng.choice(sorted(m["dirs"]))
        f = pick_file(m, rng)
        r = rng.random()
        total = sum(len(b) for b in m["inodes"].values())
        if f is not None and total > 150_000_000 and r < 0.5:
            r = 0.70  # keep the tree bounded: unlink
        if f is None or r < 0.25:
            size = rng.choice([0, 100, 4000, 70_000, 300_000, 1_500_000, 3_000_000, 12_000_000])
            op = {"kind": "create", "path": f"{d}/f{n}", "n": n, "len": size}
        elif r < 0.40:
            op = {"kind": "append", "path": f, "n": n, "len": rng.choice([10, 5000, 100_000])}
        elif r < 0.52:
            size = len(m["inodes"][m["paths"][f]])
            op = {"kind": "overwrite", "path": f, "n": n, "off": rng.randint(0, size), "len": rng.choice([1, 4096, 200_000])}
        elif r < 0.60:
            dst = rng.choice([f"{d}/r{n}", pick_file(m, rng)])
            if dst == f:
                continue
            op = {"kind": "rename", "src": f, "dst": dst}
        elif r < 0.66:
            cands = [x for x in m["dirs"] if x]
            if not cands:
                continue
            src = rng.choice(sorted(cands))
            if d == src or d.startswith(src + "/"):
                continue
            op = {"kind": "rename_dir", "src": src, "dst": f"{d}/D{n}"}
        elif r < 0.76:
            op = {"kind": "unlink", "path": f}
        elif r < 0.81:
            op = {"kind": "link", "src": f, "dst": f"{d}/h{n}"}
        elif r < 0.89:
            op = {"kind": "mkdir", "path": f"{d}/d{n}"}
        elif r < 0.93:
            empty = [x for x in m["dirs"] if x and not subdirs(m, x) and not any(p.startswith(x + "/") for p in m["paths"])]
            if not empty:
                continue
            op = {"kind": "rmdir", "path": rng.choice(sorted(empty))}
        else:
            op = {"kind": "fsync", "path": f}
        os.write(jfd, (json.dumps({"begin": n, "op": op}) + "\n").encode())
        do(mnt, op)
        os.write(jfd, (json.dumps({"end": n}) + "\n").encode())
        apply(m, op)


def write_all(fd, data, off=None):
    """Write all of data, as a careful program does: a write cut short (the
    daemon died after acknowledging part of it) is retried, and the retry
    fails, so the op is never journalled as done."""
    done = 0
    while done < len(data):
        chunk = data[done:]
        done += os.write(fd, chunk) if off is None else os.pwrite(fd, chunk, off + done)


def do(mnt, op):
    k = op["kind"]
    P = lambda p: mnt + p  # noqa: E731
    if k == "create":
        fd = os.open(P(op["path"]), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        write_all(fd, data_for(op["n"], op["len"]))
        os.close(fd)
    elif k == "append":
        fd = os.open(P(op["path"]), os.O_WRONLY | os.O_APPEND)
        write_all(fd, data_for(op["n"], op["len"]))
        os.close(fd)
    elif k == "overwrite":
        fd = os.open(P(op["path"]), os.O_WRONLY)
        write_all(fd, data_for(op["n"], op["len"]), op["off"])
        os.close(fd)
    elif k in ("rename", "rename_dir"):
        os.rename(P(op["src"]), P(op["dst"]))
    elif k == "unlink":
        os.unlink(P(op["path"]))
    elif k == "link":
        os.link(P(op["src"]), P(op["dst"]))
    elif k == "mkdir":
        os.mkdir(P(op["path"]))
    elif k == "rmdir":
        os.rmdir(P(op["path"]))
    elif k == "fsync":
        fd = os.open(P(op["path"]), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def between(old, new, got):
    """Each byte of `got` is old's or new's at that offset; length in range."""
    old = old or b""
    lo, hi = min(len(old), len(new)), max(len(old), len(new))
    if not lo <= len(got) <= hi:
        return False
    for i in range(0, len(got), 4096):
        g = got[i:i + 4096]
        if g == old[i:i + 4096] or g == new[i:i + 4096]:
            continue
        for j, b in enumerate(g):
            o = old[i + j] if i + j < len(old) else 0
            w = new[i + j] if i + j < len(new) else 0
            if b != o and b != w:
                return False
    return True


def verify(mnt, state):
    m = load(state)
    pending = None
    try:
        with open(os.path.join(state, "journal")) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        lines = []
    ops = {}
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line torn by the kill
        if "begin" in e:
            ops[e["begin"]] = e["op"]
            pending = e["begin"]
        elif "end" in e:
            apply(m, ops.pop(e["end"]))
            pending = None
    before = view(m)
    after_m = pickle.loads(pickle.dumps(m))
    inflight = ops.get(pending) if pending is not None else None
    if inflight:
        apply(after_m, inflight)
    after = view(after_m)
    got, inos = read_tree(mnt)
    problems = []
    if got != before and got != after:
        touched = set()
        if inflight and inflight["kind"] in ("create", "append", "overwrite"):
            p = inflight["path"]
            i = after_m["paths"].get(p)
            touched = {q for q, j in after_m["paths"].items() if j == i}
        for p in sorted(set(got) | set(before) | set(after)):
            g, b, a = got.get(p, "missing"), before.get(p, "missing"), after.get(p, "missing")
            if g == b or g == a:
                continue
            if p in touched and isinstance(g, bytes) and isinstance(a, bytes) and between(b if isinstance(b, bytes) else b"", a, g):
                continue
            problems.append(p)
        # Either the in-flight op happened or it did not, consistently.
        if not problems and inflight and not touched:
            problems.append("in-flight operation half applied")
    if problems:
        print(f"verify: {len(problems)} path(s) differ, in flight: {inflight}")
        for p in problems[:20]:
            g = got.get(p, "missing")
            print(f"  {p}: got {describe(g)}, acknowledged {describe(before.get(p, 'missing'))}, with in-flight {describe(after.get(p, 'missing'))}")
        return 1
    # Rebuild the model from the tree (keeping hard links together).
    nm = empty_model()
    nm["dirs"] = {p for p, v in got.items() if v is None}
    for paths in inos.values():
        i = nm["next"]
        nm["next"] += 1
        nm["inodes"][i] = bytearray(got[paths[0]])
        for p in paths:
            nm["paths"][p] = i
    save(state, nm)
    print(f"verify: ok ({len(nm['paths'])} files, {len(nm['dirs'])} dirs, in flight: {inflight['kind'] if inflight else 'none'})")
    return 0


def describe(v):
    if v is None:
        return "dir"
    if isinstance(v, str):
        return v
    return f"{len(v)} bytes"


def main():
    cmd = sys.argv[1]
    if cmd == "init":
        os.makedirs(sys.argv[2], exist_ok=True)
        save(sys.argv[2], empty_model())
    elif cmd == "run":
        try:
            run(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        except OSError:
            sys.exit(0)  # the mount went away: the daemon was killed
    elif cmd == "verify":
        sys.exit(verify(sys.argv[2], sys.argv[3]))


if __name__ == "__main__":
    main()
