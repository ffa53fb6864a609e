"""The rigs' free-port helper: a port is free for UDP and TCP alike and never handed twice."""

import socket

from appliance.simulate.rawsip import HOST, free_port


def test_free_ports_are_distinct_and_bindable_for_udp_and_tcp():
    ports = [free_port() for _ in range(50)] + [free_port(socket.SOCK_STREAM) for _ in range(50)]
    assert len(set(ports)) == len(ports)
    for port in ports[::10]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            u.bind((HOST, port))
            t.bind((HOST, port))
