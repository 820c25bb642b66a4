/**
 * How `flatline chaos run` reads an experiment's configuration: as Chaos
 * Toolkit does (chaoslib/configuration.py load_configuration), so that what
 * the freshness sampler excludes is what the experiment's probes exclude.
 */
import { expect } from 'chai';
import { configValue, type Experiment } from '@flatline/cli';

const experiment: Experiment = {
  title: 'configuration as Chaos Toolkit reads it',
  configuration: {
    faulted_flats: { type: 'env', key: 'FLATLINE_FAULTED_FLATS', default: '7,13,21' },
    token: { type: 'env', key: 'FLATLINE_TOKEN' },
    fault_seconds: 60,
    delay: '30s',
  },
};

describe('flatline chaos run reads configuration as Chaos Toolkit does', () => {
  it('an env entry is the variable when it is set', () => {
    expect(configValue(experiment, {}, 'faulted_flats', { FLATLINE_FAULTED_FLATS: '3,4' })).to.equal('3,4');
  });

  it('an env entry set to the empty string is the empty string, not the default (os.environ.get(key, default))', () => {
    expect(configValue(experiment, {}, 'faulted_flats', { FLATLINE_FAULTED_FLATS: '' })).to.equal('');
  });

  it('an env entry is its default when the variable is not set', () => {
    expect(configValue(experiment, {}, 'faulted_flats', {})).to.equal('7,13,21');
    expect(configValue(experiment, {}, 'faulted_flats', { OTHER: 'x' })).to.equal('7,13,21');
  });

  it('an env entry without a default is the variable, or nothing when it is not set', () => {
    expect(configValue(experiment, {}, 'token', { FLATLINE_TOKEN: 'abc' })).to.equal('abc');
    expect(configValue(experiment, {}, 'token', {})).to.equal(undefined);
  });

  it('--var wins over the variable and the default', () => {
    expect(configValue(experiment, { faulted_flats: '9' }, 'faulted_flats', { FLATLINE_FAULTED_FLATS: '3,4' })).to.equal('9');
  });

  it('plain values are themselves; an unknown key is nothing', () => {
    expect(configValue(experiment, {}, 'fault_seconds', {})).to.equal('60');
    expect(configValue(experiment, {}, 'delay', { DELAY: '1s' })).to.equal('30s');
    expect(configValue(experiment, {}, 'nope', {})).to.equal(undefined);
  });
});
