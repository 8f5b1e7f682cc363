/**
 * API-key authentication for every `/v1` route: `Authorization: Bearer <key>` or `X-API-Key: <key>`. A `client` key
 * acts on its own tenant only; `@AdminOnly()` routes need an `admin` key. Keys are compared in constant time.
 *
 * The key is checked in a Fastify `onRequest` hook (see `http/request-hooks.ts`), before the body is read, so an
 * unauthenticated client cannot make the gateway parse a large body and always gets 401 first. The Nest guard below
 * then only applies the route's role requirement.
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

export type AuthedRequest = FastifyRequest & { principal?: Principal };

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

/** The key a request presents, or '' when none. */
export function presentedKey(headers: FastifyRequest['headers']): string {
  const auth = headers['authorization'];
  if (typeof auth === 'string' && /^Bearer\s+/i.test(auth)) return auth.replace(/^Bearer\s+/i, '').trim();
  const x = headers['x-api-key'];
  return typeof x === 'string' ? x.trim() : '';
}

/** Maps presented keys to principals (constant-time comparison of SHA-256 digests, every key compared). */
export class ApiKeyAuthenticator {
  private readonly keys: { hash: Buffer; key: ApiKey; id: string }[];

  constructor(keys: readonly ApiKey[]) {
    this.keys = keys.map((key) => ({ hash: digest(key.key), key, id: keyId(key.key) }));
  }

  /** The principal of a presented key, or undefined when the key is unknown. */
  authenticate(presented: string): Principal | undefined {
    const h = digest(presented);
    let match: { key: ApiKey; id: string } | undefined;
    // Compare with every key (no early exit), so timing says nothing about which key was close.
    for (const k of this.keys) if (timingSafeEqual(k.hash, h)) match = k;
    return match ? { role: match.key.role, tenant: match.key.tenant, keyId: match.id } : undefined;
  }
}

/** Enforces the route's role; the principal was set by the authentication hook. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(@Inject(Reflector) private readonly reflector: Reflector) {}

  canActivate(ctx: ExecutionContext): boolean {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, targets)) return true;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    if (!req.principal) throw problems.unauthorized();
    if (this.reflector.getAllAndOverride<boolean>(ADMIN_ONLY, targets) && req.principal.role !== 'admin')
      throw problems.forbidden();
    return true;
  }
}
