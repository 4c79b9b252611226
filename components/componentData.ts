/**
 * The public outputs of a component that declares its resources in `initialize` (it must look things up
 * first): each property is picked from the data `initialize` returns, keeping that output's own secrecy and
 * preview unknowns. A failed `initialize` (invalid arguments) reaches the program once, through `ready`: the
 * properties then stay unknown instead of each rejecting on its own, which Node would report as many
 * unhandled rejections of the one error.
 */
import * as pulumi from "@pulumi/pulumi";

export interface ComponentData<D> {
  /** One property of the data as an output. */
  pick<T>(select: (data: D) => pulumi.Input<T>): pulumi.Output<T>;
  /** Settles once `initialize` has declared every resource; rejects with its error. */
  ready: Promise<void>;
}

export function componentData<D>(data: Promise<D>): ComponentData<D> {
  const settled = data.then(
    (d) => ({ ok: true as const, d }),
    () => ({ ok: false as const }),
  );
  return {
    pick: <T>(select: (d: D) => pulumi.Input<T>) =>
      pulumi.output(settled.then((r) => (r.ok ? select(r.d) : (pulumi.unknown as T)))) as pulumi.Output<T>,
    ready: data.then(() => undefined),
  };
}
