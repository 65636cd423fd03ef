#!/usr/bin/env python3
"""Compare the wire surface of our .proto files with etcd's own.

Compiles both sets with `protoc` into FileDescriptorSets, decodes them to
text with protoc itself, and prints one normalised line per field
(name = number label type type_name oneof), enum value and RPC (with
streaming flags). Then diffs ours against each reference found. Comments,
options and file layout are ignored; only what reaches the wire (and the
names the Rust code is derived from) is compared.

Usage: python3 etcd-proto/proto/wire_diff.py
Needs: protoc with google/protobuf/descriptor.proto under /usr/include.
See WIRE.md for the references and the expected differences.
"""
import difflib, glob, os, re, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGES = {"etcdserverpb", "mvccpb", "authpb", "v3lockpb", "v3electionpb"}
OURS = (["etcdserverpb/rpc.proto", "v3lockpb/v3lock.proto", "v3electionpb/v3election.proto"], [HERE])


def references(tmp):
    """(name, files, include dirs) of each reference tree present on this machine."""
    refs = []
    go = "/usr/share/gocode/src"
    deb = f"{go}/go.etcd.io/etcd"
    if os.path.isdir(deb):
        # Debian's golang-etcd-server-dev (etcd 3.4) imports "etcd/..." paths.
        os.makedirs(f"{tmp}/deb/etcd", exist_ok=True)
        for d in ("etcdserver", "mvcc", "auth"):
            os.symlink(f"{deb}/{d}", f"{tmp}/deb/etcd/{d}")
        refs.append(("etcd 3.4 (Debian golang-etcd-server-dev)",
                     ["etcd/etcdserver/etcdserverpb/rpc.proto",
                      "etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
                      "etcd/etcdserver/api/v3election/v3electionpb/v3election.proto"],
                     [f"{tmp}/deb", f"{go}/github.com/gogo/protobuf",
                      f"{go}/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis"]))
    for d in sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/etcd-client-0.*/proto"))):
        refs.append((f"etcd main-branch copy in {d}",
                     ["etcd/api/etcdserverpb/rpc.proto",
                      "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
                      "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto"],
                     [d]))
    return refs


def parse(lines, i=0):
    node = []
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if line == "}":
            return node, i
        m = re.match(r"^(\w+) \{$", line)
        if m:
            sub, i = parse(lines, i)
            node.append((m.group(1), sub))
        else:
            k, v = line.split(": ", 1)
            node.append((k, v.strip('"')))
    return node, i


def get(node, key):
    return [v for k, v in node if k == key]


def one(node, key):
    g = get(node, key)
    return g[0] if g else ""


def listing(files, includes):
    with tempfile.NamedTemporaryFile() as out:
        args = ["protoc", "--include_imports", "-o", out.name, "-I/usr/include"]
        args += [f"-I{d}" for d in includes] + files
        subprocess.run(args, check=True)
        text = subprocess.run(
            ["protoc", "-I/usr/include", "--decode=google.protobuf.FileDescriptorSet",
             "google/protobuf/descriptor.proto"],
            stdin=open(out.name, "rb"), check=True, capture_output=True, text=True).stdout
    tree, _ = parse(text.splitlines())
    lines = []

    def enum(prefix, e):
        name = f"{prefix}.{one(e, 'name')}"
        for v in get(e, "value"):
            lines.append(f"enum {name}.{one(v, 'name')} = {one(v, 'number')}")

    def message(prefix, m):
        name = f"{prefix}.{one(m, 'name')}"
        lines.append(f"message {name}")
        oneofs = [one(o, "name") for o in get(m, "oneof_decl")]
        for f in get(m, "field"):
            oi = one(f, "oneof_index")
            lines.append(" ".join(x for x in [
                f"field {name}.{one(f, 'name')} = {one(f, 'number')}", one(f, "label"),
                one(f, "type"), one(f, "type_name"), f"oneof {oneofs[int(oi)]}" if oi else ""] if x))
        for e in get(m, "enum_type"):
            enum(name, e)
        for n in get(m, "nested_type"):
            message(name, n)

    for f in get(tree, "file"):
        pkg = one(f, "package")
        if pkg not in PACKAGES:
            continue
        for m in get(f, "message_type"):
            message(f".{pkg}", m)
        for e in get(f, "enum_type"):
            enum(f".{pkg}", e)
        for s in get(f, "service"):
            for r in get(s, "method"):
                cs = "stream " if one(r, "client_streaming") == "true" else ""
                ss = "stream " if one(r, "server_streaming") == "true" else ""
                lines.append(f"rpc /{pkg}.{one(s, 'name')}/{one(r, 'name')}"
                             f"({cs}{one(r, 'input_type')}) -> {ss}{one(r, 'output_type')}")
    return sorted(lines)


def main():
    ours = listing(*OURS)
    print(f"ours: {len(ours)} lines")
    with tempfile.TemporaryDirectory() as tmp:
        for name, files, includes in references(tmp):
            theirs = listing(files, includes)
            print(f"\n=== {name}: {len(theirs)} lines; '-' only theirs, '+' only ours")
            for line in difflib.unified_diff(theirs, ours, lineterm="", n=0):
                if not line.startswith(("---", "+++", "@@")):
                    print(line)


if __name__ == "__main__":
    sys.exit(main())
