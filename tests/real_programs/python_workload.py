"""The CPython workload of the real-programs tier: the file APIs a Python
program reaches for (io, os, shutil, pathlib, zipfile, tempfile), run on the
tree at sys.argv[1], which holds the tier's seed under `input/`.

Prints one line per check. Anything a store answers differently shows as a
different line, so two transcripts are compared line for line. Times and
inode numbers are not printed: they differ between any two filesystems.
"""

import errno
import hashlib
import io
import os
import pathlib
import shutil
import stat
import sys
import tempfile
import zipfile

root = sys.argv[1]
work = os.path.join(root, "python")


def say(label, value):
    print(f"{label}: {value}")


def kind(mode):
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def outcome(label, action):
    """Runs `action`, printing its result or the errno name it raised."""
    try:
        say(label, action())
    except OSError as e:
        say(label, errno.errorcode.get(e.errno, e.errno))


def digest_tree(top):
    """Every entry under `top`, in sorted order, with its kind, size and
    content hash."""
    lines = []
    for parent, dirs, files in os.walk(top):
        dirs.sort()
        rel = os.path.relpath(parent, top)
        for name in sorted(files):
            path = os.path.join(parent, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                lines.append(f"{rel}/{name} -> {os.readlink(path)}")
            else:
                with open(path, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()[:16]
                lines.append(f"{rel}/{name} {st.st_size} {h}")
        for name in dirs:
            lines.append(f"{rel}/{name}/")
    return lines


# The seed, read as it came.
for line in digest_tree(os.path.join(root, "input")):
    say("seed", line)

os.mkdir(work)
outcome("mkdir again", lambda: os.mkdir(work))

# Writing and reading back, in every mode io offers.
p = os.path.join(work, "notes.txt")
with open(p, "w") as f:
    for i in range(1000):
        f.write(f"line {i} {'x' * (i % 37)}\n")
with open(p, "a") as f:
    f.write("appended\n")
with open(p, "r+b") as f:
    f.seek(5)
    f.write(b"FIVE")
    f.seek(0, io.SEEK_END)
    say("end", f.tell())
    f.truncate(20000)
    say("truncated", os.fstat(f.fileno()).st_size)
with open(p, "rb") as f:
    data = f.read()
    say("notes", f"{len(data)} {hashlib.sha256(data).hexdigest()[:16]}")
    f.seek(-9, io.SEEK_END)
    say("tail", f.read())
outcome("exclusive", lambda: open(p, "x"))
outcome("missing", lambda: open(os.path.join(work, "nope"), "r"))
outcome("dir as file", lambda: open(work, "r").read())

# A sparse file: a hole reads as zeros.
sparse = os.path.join(work, "sparse")
with open(sparse, "wb") as f:
    f.seek(1 << 20)
    f.write(b"end")
with open(sparse, "rb") as f:
    f.seek((1 << 20) - 2)
    say("sparse", f.read())
say("sparse size", os.path.getsize(sparse))

# Names: renames, replacement, links, symlinks.
os.makedirs(os.path.join(work, "a", "b", "c"))
for i in range(50):
    with open(os.path.join(work, "a", "b", f"f{i:02}"), "w") as f:
        f.write(str(i) * i)
os.rename(os.path.join(work, "a", "b", "f00"), os.path.join(work, "a", "moved"))
os.replace(os.path.join(work, "a", "b", "f01"), os.path.join(work, "a", "b", "f02"))
outcome("rename onto dir", lambda: os.rename(os.path.join(work, "a", "moved"), os.path.join(work, "a", "b")))
outcome("rmdir not empty", lambda: os.rmdir(os.path.join(work, "a")))
os.link(os.path.join(work, "a", "b", "f03"), os.path.join(work, "hard"))
say("links", os.stat(os.path.join(work, "hard")).st_nlink)
os.symlink("a/b/f04", os.path.join(work, "soft"))
say("readlink", os.readlink(os.path.join(work, "soft")))
with open(os.path.join(work, "soft")) as f:
    say("through symlink", f.read())
say("lstat", kind(os.lstat(os.path.join(work, "soft")).st_mode))
say("stat", kind(os.stat(os.path.join(work, "soft")).st_mode))
os.symlink("nowhere", os.path.join(work, "dangling"))
outcome("dangling", lambda: os.stat(os.path.join(work, "dangling")))
say("exists", [os.path.exists(os.path.join(work, n)) for n in ("soft", "dangling", "a")])

# Listings: scandir, listdir, glob, walk.
with os.scandir(os.path.join(work, "a", "b")) as it:
    entries = sorted((e.name, e.is_dir(), e.is_file()) for e in it)
say("scandir", entries[:5])
say("listdir", len(os.listdir(os.path.join(work, "a", "b"))))
say("glob", sorted(str(q.relative_to(work)) for q in pathlib.Path(work).glob("a/b/f1*")))

# A copy of the seed, changed, then compared.
shutil.copytree(os.path.join(root, "input"), os.path.join(work, "copy"), symlinks=True)
for parent, dirs, files in os.walk(os.path.join(work, "copy")):
    for name in files:
        path = os.path.join(parent, name)
        if not os.path.islink(path) and name.endswith(".txt"):
            with open(path, "a") as f:
                f.write("touched\n")
for line in digest_tree(os.path.join(work, "copy")):
    say("copy", line)

# A zip archive written and read back.
z = os.path.join(work, "archive.zip")
with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_STORED) as archive:
    for parent, dirs, files in os.walk(os.path.join(root, "input")):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                archive.write(path, os.path.relpath(path, root), compress_type=zipfile.ZIP_STORED)
with zipfile.ZipFile(z) as archive:
    say("zip", [(i.filename, i.file_size) for i in archive.infolist()][:6])
    say("zip test", archive.testzip())

# Temporary files in a directory of the store.
with tempfile.TemporaryDirectory(dir=work) as t:
    with tempfile.NamedTemporaryFile(dir=t, delete=False) as f:
        f.write(b"temporary")
    say("temp", os.path.getsize(f.name))
say("temp gone", os.path.exists(t))

# Removal of a whole tree.
shutil.rmtree(os.path.join(work, "copy"))
shutil.rmtree(os.path.join(work, "a"))
say("after rmtree", sorted(os.listdir(work)))
for line in digest_tree(work):
    say("left", line)
