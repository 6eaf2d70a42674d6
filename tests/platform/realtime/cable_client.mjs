// The stock @rails/actioncable client, run by Node against a Junction server.
//
// Usage: node cable_client.mjs <ws url> <identifier JSON>...
// Prints one JSON line per event: the raw frames the server sent ("frame"), the
// negotiated subprotocol ("open"), and the client's own callbacks ("connected",
// "rejected", "received"). Exits when stdin closes, or after 60 s.
import { createConsumer, adapters } from "@rails/actioncable"
import WebSocket from "ws"

const print = (event) => process.stdout.write(JSON.stringify(event) + "\n")

// Node has no global WebSocket (before 22) and no window: give the client what a
// browser would, without touching the client itself.
class RecordingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args)
    this.addEventListener("open", () => print({ event: "open", protocol: this.protocol }))
    this.addEventListener("message", (message) => print({ event: "frame", data: String(message.data) }))
  }
}
adapters.WebSocket = RecordingWebSocket
globalThis.addEventListener ??= () => {}
globalThis.removeEventListener ??= () => {}

const [url, ...identifiers] = process.argv.slice(2)
const consumer = createConsumer(url)
for (const text of identifiers) {
  const params = JSON.parse(text)
  consumer.subscriptions.create(params, {
    connected() { print({ event: "connected", identifier: this.identifier }) },
    rejected() { print({ event: "rejected", identifier: this.identifier }) },
    received(data) { print({ event: "received", identifier: this.identifier, data }) },
  })
}

const stop = () => { consumer.disconnect(); process.exit(0) }
process.stdin.on("end", stop)
process.stdin.resume()
setTimeout(stop, 60_000)
