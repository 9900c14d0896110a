// Auto-creation lives in core (core/auto-create.ts): the router and wasm plugins' routes share one module, so an
// address has one allowance per service however its requests are routed, and no plugin imports another.
export {
  AddressAllowance,
  MAX_TRACKED_ADDRESSES,
  addressKey,
  autoCreate,
  autoCreates,
  type AutoCreateBounds,
  type AutoCreateContext,
  type AutoCreateRefusal,
} from '../../core/auto-create.ts';
