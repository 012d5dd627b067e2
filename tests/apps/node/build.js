// The build script: writes what the server shows, to prove it ran at build time.
require("fs").writeFileSync("built.txt", "built at build time\n");
console.log("build script ran");
