// Node module hooks (see register.js): the contract's imports resolve to
// the test host in native/.
const PREFIX = 'barrage:plugin/';

export async function resolve(specifier, context, next) {
  if (specifier.startsWith(PREFIX)) {
    const iface = specifier.slice(PREFIX.length).split('@')[0];
    return { url: new URL(`./native/${iface}.js`, import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
