// `node --import ./barrage-plugin/register.js --test`: plugin code imports
// the contract (`barrage:plugin/log@0.2.0`, ...), which only a component
// has; under Node those imports resolve to the test host instead.
import { register } from 'node:module';

register('./hooks.js', import.meta.url);
