/**
 * API-key authentication for every `/v1` route: `Authorization: Bearer <key>` or `X-API-Key: <key>`. A `client` key
 * acts on its own tenant only; `@AdminOnly()` routes need an `admin` key. Keys are compared in constant time.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import {
  Inject,
  Injectable,
  SetMetadata,
  createParamDecorator,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { ApiKey, Role } from '@gantry/config';
import type { FastifyRequest } from 'fastify';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { problems } from '../http/problem';

export interface Principal {
  role: Role;
  tenant: string;
  /** A stable, non-secret id of the key (for rate limits and logs). */
  keyId: string;
}

const ADMIN_ONLY = 'gantry:admin-only';
const PUBLIC = 'gantry:public';
export const AdminOnly = () => SetMetadata(ADMIN_ONLY, true);
export const Public = () => SetMetadata(PUBLIC, true);

type AuthedRequest = FastifyRequest & { principal?: Principal };

export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  const p = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
  if (!p) throw problems.unauthorized();
  return p;
});

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function keyId(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly keys: { hash: Buffer; key: ApiKey }[];

  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
  ) {
    this.keys = config.API_KEYS.map((key) => ({ hash: digest(key.key), key }));
  }

  canActivate(ctx: ExecutionContext): boolean {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, targets)) return true;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const auth = req.headers['authorization'];
    const presented =
      typeof auth === 'string' && /^Bearer\s+/i.test(auth)
        ? auth.replace(/^Bearer\s+/i, '').trim()
        : typeof req.headers['x-api-key'] === 'string'
          ? req.headers['x-api-key'].trim()
          : '';
    if (!presented) throw problems.unauthorized();
    const h = digest(presented);
    const match = this.keys.find((k) => timingSafeEqual(k.hash, h));
    if (!match) throw problems.unauthorized('unknown API key');
    req.principal = { role: match.key.role, tenant: match.key.tenant, keyId: keyId(presented) };
    if (this.reflector.getAllAndOverride<boolean>(ADMIN_ONLY, targets) && match.key.role !== 'admin')
      throw problems.forbidden();
    return true;
  }
}
