import { serviceBuild } from '../../tsup.base';

export default serviceBuild();
