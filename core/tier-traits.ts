/**
 * What a tier's runtime does with what other plugins hand it on the spawn spec, declared by the runtime
 * (`kernel.declareTier`) so that no other plugin names tiers. A tier nobody declared gets DEFAULT_TIER_TRAITS,
 * the assumptions that are safe for a runtime Tenement knows nothing about.
 */
export interface TierTraits {
  /**
   * The instance and its cgroup (SpawnSpec.cgroupProcs):
   * - `limits`: the runtime joins the cgroups from outside its sandbox, and cgroup limits bound the app;
   * - `membership`: it joins them (stop and orphan clean-up kill by cgroup, figures come from it), but a cgroup
   *   limit would not bound the app as the config means (a VM's memory is its guest's RAM, sized by the runtime);
   * - `none`: it does not join them (its instances have no process of their own, or it cannot).
   */
  cgroups: 'limits' | 'membership' | 'none';
  /** The runtime enforces `limits.storage` itself (e.g. a VM's data disk of that size). */
  enforcesStorageLimit: boolean;
  /** The runtime can bind DATA_DIR when it is a symbolic link; if not, it is given the link's target instead. */
  followsDataDirLink: boolean;
  /**
   * The runtime starts processes as SpawnSpec.user, so each instance is given a uid of its own when Tenement is
   * root. False for a tier with no processes of its own (its instances reserve no uid).
   */
  tenantUid: boolean;
  /**
   * The kernel probes an instance's port with a real bind before the spawn, so a port some other program holds is
   * skipped. False for a runtime whose instances are served without that port (in-process: the wasm tier's
   * loopback server binds it in the background and, if it is taken, ends as a crash and is started on another
   * port): its wakes skip the probe's bind and close.
   */
  probesPort: boolean;
}

export const DEFAULT_TIER_TRAITS: Readonly<TierTraits> = Object.freeze({
  cgroups: 'none',
  enforcesStorageLimit: false,
  followsDataDirLink: true,
  tenantUid: true,
  probesPort: true,
});

export function sameTraits(a: TierTraits, b: TierTraits): boolean {
  return (Object.keys(DEFAULT_TIER_TRAITS) as (keyof TierTraits)[]).every((trait) => a[trait] === b[trait]);
}
