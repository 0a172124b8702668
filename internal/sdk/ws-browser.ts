/**
 * Stands in for the `ws` package in the browser build (`npm run build:sdk-browser`
 * aliases `ws` to this file): browsers have a native WebSocket, so the bundle
 * neither contains nor asks a bundler for `ws`.
 */
export const WebSocket = globalThis.WebSocket;
