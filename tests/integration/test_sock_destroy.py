"""SOCK_DESTROY over netlink on real sockets: only the named connections die."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from lumen_sniff.budgets.endpoints import destroy
from tests.conftest import require_or_skip


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_destroy_closes_only_connections_to_the_endpoints(family: int) -> None:
    require_or_skip(os.geteuid() == 0, "SOCK_DESTROY needs CAP_NET_ADMIN")
    host = "127.0.0.1" if family == socket.AF_INET else "::ffff:127.0.0.1"
    with socket.socket(family) as llm, socket.socket(family) as other:
        llm.bind(("" if family == socket.AF_INET6 else "127.0.0.1", 0))
        other.bind(("" if family == socket.AF_INET6 else "127.0.0.1", 0))
        llm.listen()
        other.listen()
        port, other_port = llm.getsockname()[1], other.getsockname()[1]
        with socket.socket(family) as c1, socket.socket(family) as c2:
            c1.connect((host, port))
            c2.connect((host, other_port))
            s1, _ = llm.accept()
            s2, _ = other.accept()
            with s1, s2:
                assert destroy({os.getpid()}, {("127.0.0.1", port)}) == 1
                with pytest.raises(OSError) as err:
                    c1.send(b"x")
                    c1.recv(1)
                assert err.value.errno == errno.ECONNABORTED
                c2.sendall(b"ok")  # the other connection is untouched
                assert s2.recv(2) == b"ok"
