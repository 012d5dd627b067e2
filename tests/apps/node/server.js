const http = require("http");
const isNumber = require("is-number");
http
  .createServer((req, res) => res.end(`hello from node, 42 is a number: ${isNumber(42)}\n`))
  .listen(process.env.PORT);
