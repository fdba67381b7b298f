// aedes on 127.0.0.1:PORT (argv[2]), in memory, for the interop tests.
// Prints "listening PORT" once it accepts connections; logs connects and errors.
import net from 'node:net'
import { Aedes } from 'aedes'

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node aedes_server.mjs PORT')
  process.exit(2)
}
const aedes = await Aedes.createBroker()
aedes.on('client', (c) => console.log('connect', c.id))
aedes.on('clientDisconnect', (c) => console.log('disconnect', c.id))
aedes.on('clientError', (c, err) => console.log('clientError', c && c.id, err.message))
aedes.on('connectionError', (c, err) => console.log('connectionError', c && c.id, err.message))
const server = net.createServer(aedes.handle)
server.listen(port, '127.0.0.1', () => console.log('listening', port))
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => aedes.close(() => server.close(() => process.exit(0))))
}
