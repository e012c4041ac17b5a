from __future__ import annotations

import pytest

from runbook_operator.devcluster.runtime.sandbox import (
    Bind,
    bwrap_argv,
    image_root_argv,
    resolve_in_root,
    root_binds,
    roots_under_mounts,
    shadowed_roots,
)
from runbook_operator.devcluster.runtime.spec import Identity

HOST = {
    "/etc": [("hosts", None), ("passwd", None), ("ssl", None), ("localtime", "/usr/share/z")],
    "/etc/ssl": [("certs", None)],
}


def entries(path: str) -> list[tuple[str, str | None]]:
    return HOST[path]


def _pairs(args: list[str], flag: str) -> list[tuple[str, ...]]:
    width = {"--ro-bind": 2, "--bind": 2, "--symlink": 2, "--dir": 1}[flag]
    return [tuple(args[i + 1:i + 1 + width]) for i, a in enumerate(args) if a == flag]


def test_a_root_without_targets_is_bound_whole() -> None:
    assert root_binds("/usr", ["/tmp", "/etc/app"], entries) == ["--ro-bind", "/usr", "/usr"]


def test_a_root_holding_a_target_is_rebuilt_entry_by_entry() -> None:
    args = root_binds("/etc", ["/etc/ssl/private", "/etc/hosts"], entries)
    assert _pairs(args, "--dir") == [("/etc",), ("/etc/ssl",)]
    assert _pairs(args, "--ro-bind") == [("/etc/passwd", "/etc/passwd"),
                                         ("/etc/ssl/certs", "/etc/ssl/certs")]
    assert _pairs(args, "--symlink") == [("/usr/share/z", "/etc/localtime")]


def test_mounts_at_the_images_own_paths_are_found() -> None:
    roots = ["/usr", "/work/checkout/.venv"]
    targets = ["/work", "/tmp", "/usr", "/work/checkout/.venv/lib"]
    assert shadowed_roots(roots, targets) == ["/usr"]
    assert roots_under_mounts(roots, targets) == ["/work/checkout/.venv"]


def test_a_checkout_under_the_pods_tmp_is_bound_again_over_it() -> None:
    """CI may clone into /tmp, where every pod mounts its writable layer: the venv must
    still be there inside the sandbox, so it is bound after the mount."""
    argv = _argv(as_root=True, root_paths=["/usr", "/tmp/ci/.venv"])
    binds = [(flag, *argv[i + 1:i + 3]) for i, flag in enumerate(argv)
             if flag in ("--bind", "--ro-bind")]
    assert binds.index(("--bind", "/pods/p/tmp", "/tmp")) < binds.index(
        ("--ro-bind", "/tmp/ci/.venv", "/tmp/ci/.venv"))
    assert binds.count(("--ro-bind", "/tmp/ci/.venv", "/tmp/ci/.venv")) == 1
    made = argv.index("/tmp/ci", argv.index("/tmp") + 1)  # made inside the bound /tmp
    assert argv[made - 3:made] == ["--perms", "0755", "--dir"]


def _argv(as_root: bool, **changes) -> list[str]:
    options = dict(bwrap="/usr/bin/bwrap", setpriv="/usr/bin/setpriv",
                   root_paths=["/usr", "/etc", "/work/checkout/.venv"],
                   binds=[Bind("/pods/p/tmp", "/tmp", False),
                          Bind("/pods/p/secret", "/etc/app/secret", True),
                          Bind("/pods/p/msg", "/dev/termination-log", False)],
                   working_dir="/data", identity=Identity(65532, 65532, (65532, 3000)),
                   as_root=as_root, argv=["runbook-operator", "runner"], entries=entries)
    return bwrap_argv(**{**options, **changes})


def test_root_runs_the_command_as_the_pods_user_through_setpriv() -> None:
    argv = _argv(as_root=True)
    assert argv[:2] == ["/usr/bin/bwrap", "--die-with-parent"]
    tail = argv[argv.index("--") + 1:]
    assert tail == ["/usr/bin/setpriv", "--reuid=65532", "--regid=65532", "--groups=65532,3000",
                    "--no-new-privs", "--", "runbook-operator", "runner"]
    assert ("/pods/p/tmp", "/tmp") in _pairs(argv, "--bind")
    assert ("/pods/p/secret", "/etc/app/secret") in _pairs(argv, "--ro-bind")
    assert ("/usr", "/usr") in _pairs(argv, "--ro-bind")
    assert argv[argv.index("--chdir") + 1] == "/data"


def test_mount_points_and_the_checkouts_parents_are_traversable_directories() -> None:
    argv = _argv(as_root=True)
    dirs = [d for (d,) in _pairs(argv, "--dir")]
    assert {"/work", "/work/checkout", "/etc/app", "/data"} <= set(dirs)
    for directory in ("/work", "/etc/app", "/data"):
        index = argv.index(directory)
        assert argv[index - 3:index - 1] == ["--perms", "0755"]
    assert dirs.index("/etc/app") > dirs.index("/etc")  # made inside the rebuilt /etc


def test_others_get_the_pods_uid_inside_a_user_namespace_only() -> None:
    argv = _argv(as_root=False)
    assert "setpriv" not in " ".join(argv)
    tail = argv[argv.index("--unshare-user"):]
    assert tail == ["--unshare-user", "--uid=65532", "--gid=65532", "--", "runbook-operator",
                    "runner"]


#: A Debian-like image root: /var/run is /run, /bin is usr/bin, a loop and an escape.
IMAGE_LINKS = {"/var/run": "/run", "/bin": "usr/bin", "/loop": "/loop",
               "/run/up": "../../../etc"}
IMAGE = {
    "/img": [("bin", "usr/bin"), ("dev", None), ("etc", None), ("opt", None), ("run", None),
             ("tmp", None), ("usr", None), ("var", None)],
    "/img/run": [("lock", None)],
    "/img/var": [("lib", None), ("run", "/run")],
}


def _image_argv(as_root: bool = True) -> list[str]:
    binds = [Bind("/pods/p/tmp", "/tmp", False),
             Bind("/pods/p/token", "/var/run/secrets/kubernetes.io/serviceaccount", True),
             Bind("/pods/p/msg", "/dev/termination-log", False)]
    return image_root_argv(
        bwrap="/usr/bin/bwrap", rootfs="/img", binds=binds, working_dir="/",
        identity=Identity(65532, 65532, (65532,)), as_root=as_root, helper_fd=7,
        argv=["runbook-operator", "run"], entries=lambda path: IMAGE[path],
        readlink=IMAGE_LINKS.get)


def test_paths_resolve_through_the_images_own_symlinks_and_never_leave_it() -> None:
    assert resolve_in_root("/var/run/secrets", IMAGE_LINKS.get) == "/run/secrets"
    assert resolve_in_root("/bin/python3", IMAGE_LINKS.get) == "/usr/bin/python3"
    assert resolve_in_root("/run/up/passwd", IMAGE_LINKS.get) == "/etc/passwd"
    assert resolve_in_root("/opt/../../tmp", IMAGE_LINKS.get) == "/tmp"
    with pytest.raises(ValueError, match="symbolic links"):
        resolve_in_root("/loop/x", IMAGE_LINKS.get)


def test_a_built_image_is_the_whole_root_with_the_mounts_at_their_resolved_paths() -> None:
    argv = _image_argv()
    assert ("/img/usr", "/usr") in _pairs(argv, "--ro-bind")
    assert ("/img/etc", "/etc") in _pairs(argv, "--ro-bind")
    assert ("/img/run/lock", "/run/lock") in _pairs(argv, "--ro-bind")
    assert ("/img/var", "/var") in _pairs(argv, "--ro-bind")  # its run link kept: no mount
    assert ("/pods/p/token", "/run/secrets/kubernetes.io/serviceaccount") in _pairs(
        argv, "--ro-bind")
    assert ("/pods/p/tmp", "/tmp") in _pairs(argv, "--bind")
    sources = [source for source, _ in _pairs(argv, "--ro-bind")]
    assert not {"/img", "/img/tmp", "/img/dev", "/img/run"} & set(sources)
    dirs = [d for (d,) in _pairs(argv, "--dir")]
    assert dirs.index("/run") < dirs.index("/run/secrets/kubernetes.io")
    assert argv.index("--dev") < argv.index("/pods/p/msg")


def test_as_root_a_built_image_becomes_its_user_through_the_helper_it_is_passed() -> None:
    argv = _image_argv(as_root=True)
    assert argv[argv.index("--") + 1:] == ["/proc/self/fd/7", "65532", "65532", "65532",
                                           "runbook-operator", "run"]
    others = _image_argv(as_root=False)
    assert others[others.index("--unshare-user"):] == [
        "--unshare-user", "--uid=65532", "--gid=65532", "--", "runbook-operator", "run"]
