import { usage } from './errors.js';
import { openGateway, type GatewaySession } from './gateway.js';
import { OpsClient } from './ops-client.js';
import { Output, type CliIO } from './output.js';

/** Where the hub is when nothing says otherwise: `kubectl port-forward` to ops and the gateway on their default ports. */
export const DEFAULT_OPS_URL = 'http://localhost:8081';
export const DEFAULT_GATEWAY_URL = 'ws://localhost:8080/ws';

/** The options every command accepts (flags win over the environment). */
export interface GlobalArgs {
  ops?: string | undefined;
  opsToken?: string | undefined;
  gateway?: string | undefined;
  token?: string | undefined;
  json?: boolean | undefined;
  color?: boolean | undefined;
}

/** What a command runs with: its output, and the two servers it may talk to, opened on first use. */
export class Context {
  readonly io: CliIO;
  readonly out: Output;
  readonly #args: GlobalArgs;
  #ops: OpsClient | undefined;

  constructor(io: CliIO, args: GlobalArgs) {
    this.io = io;
    this.#args = args;
    this.out = new Output(io, { json: args.json === true, color: args.color });
  }

  get json(): boolean {
    return this.out.json;
  }

  /** The ops API: `--ops` / OUTBOX_HUB_OPS_URL (default {@link DEFAULT_OPS_URL}), `--ops-token` / OUTBOX_HUB_OPS_TOKEN. */
  ops(): OpsClient {
    const env = this.io.env;
    this.#ops ??= new OpsClient(
      this.#args.ops ?? (env['OUTBOX_HUB_OPS_URL'] || DEFAULT_OPS_URL),
      this.#args.opsToken ?? (env['OUTBOX_HUB_OPS_TOKEN'] || undefined),
      this.io.signal,
    );
    return this.#ops;
  }

  /** Whether an ops URL was given at all (commands that can do without ops ask). */
  get opsGiven(): boolean {
    return this.#args.ops !== undefined || !!this.io.env['OUTBOX_HUB_OPS_URL'];
  }

  /** The gateway through the SDK: `--gateway` / OUTBOX_HUB_GATEWAY_URL, `--token` / OUTBOX_HUB_TOKEN (required). */
  gateway(): Promise<GatewaySession> {
    const env = this.io.env;
    const token = this.#args.token ?? (env['OUTBOX_HUB_TOKEN'] || undefined);
    if (!token) throw usage('the gateway needs a token: give --token or set OUTBOX_HUB_TOKEN (outbox-hub token mints a development one)');
    return openGateway(this.#args.gateway ?? (env['OUTBOX_HUB_GATEWAY_URL'] || DEFAULT_GATEWAY_URL), token, this.io.signal);
  }
}
