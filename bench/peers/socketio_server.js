// The Socket.IO peer of bench/sockets.py: the `websocket` transport only, and an event `ping`
// acknowledged with what it carried. Listens on 127.0.0.1 (port from argv, 0: a free one) and
// prints `listening PORT` once it accepts connections; stops on SIGTERM.
"use strict";

const http = require("http");
const path = require("path");

// socket.io is installed in bench/js (`make bench-setup`), not beside this file.
const { Server } = require(require.resolve("socket.io", { paths: [path.join(__dirname, "..", "js")] }));

const port = Number(process.argv[2] || 0);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  // Defaults otherwise (pingInterval 25 s, pingTimeout 20 s, perMessageDeflate off): the
  // server as most deployments run it.
});

io.on("connection", (socket) => {
  socket.on("ping", (payload, ack) => {
    if (typeof ack === "function") ack(payload);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});

process.on("SIGTERM", () => {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
