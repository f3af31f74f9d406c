# moto's server, with one change: requests are handled one at a time.
#
# moto rolls a failed DynamoDB transaction back by restoring a copy of the whole
# table taken when the transaction started, which erases whatever other
# requests committed meanwhile. Real DynamoDB isolates transactions, so the
# tests serialize requests instead of seeing failures AWS would never produce.
# The server also exits when the process that started it is gone, so a test
# binary that keeps its server in a static leaves nothing behind.
import os
import sys
import threading
import time

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
parent = os.getppid()


def exit_with_parent():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=exit_with_parent, daemon=True).start()

app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()


def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))


run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)
