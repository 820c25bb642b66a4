/**
 * How `flatline chaos run` reads an experiment's configuration: as Chaos
 * Toolkit does (chaoslib/configuration.py load_configuration), so that what
 * the freshness sampler excludes is what the experiment's probes exclude.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configValue, experiments, resolveExperiment, type Experiment } from '@flatline/cli';
import { REPO_ROOT } from '@flatline/stack';

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

describe('flatline chaos run finds an experiment by the short name its description and the README give', () => {
  const chaosDir = join(REPO_ROOT, 'chaos');
  it('each experiment\'s "Run it with: npm run chaos -- <name>" names that experiment and no other', () => {
    for (const folder of experiments()) {
      const description = (JSON.parse(readFileSync(join(chaosDir, folder, 'experiment.json'), 'utf8')) as { description: string }).description;
      const short = /Run it with: npm run chaos -- (\S+)/.exec(description)?.[1];
      expect(short, `${folder}: its description says how to run it`).to.be.a('string');
      expect(resolveExperiment(short!), short).to.equal(join(chaosDir, folder, 'experiment.json'));
    }
  });

  it('every `npm run chaos -- <name>` of the READMEs names exactly one experiment', () => {
    for (const readme of [join(REPO_ROOT, 'README.md'), join(chaosDir, 'README.md')]) {
      for (const m of readFileSync(readme, 'utf8').matchAll(/npm run chaos -- ([\w-]+)/g)) expect(() => resolveExperiment(m[1]!), `${readme}: ${m[1]}`).to.not.throw();
    }
  });

  it('refuses a name that matches two experiments, naming both (the check can fail)', () => {
    expect(() => resolveExperiment('measurements-keep-arriving')).to.throw(/matches .*say which/);
  });
});
