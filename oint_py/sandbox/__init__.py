"""The sandbox: a Bitrix24 portal on loopback for dry runs and for the tests.

portal.py holds its state and rules, server.py serves them over HTTP/TLS,
command.py is the `oint sandbox` command.
"""
